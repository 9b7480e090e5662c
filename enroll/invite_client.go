package enroll

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// EnrollInvite enrolls this device with the one-time user key of an email
// invitation (userkey=); the user is the one the tenant invited, so upn= and
// token= are not needed. enrollauthtoken= and enrollencryptiontoken= work as for
// UPN enrollment. The result is not yet saved: call Save. A key that was used
// before is refused with ReasonInvitationUsed.
func EnrollInvite(ctx context.Context, p Params, log *zap.Logger) (*Identity, error) {
	base, err := checkTokenParams(p)
	if err != nil {
		return nil, err
	}
	if p.UserKey == "" {
		return nil, errorf(ReasonBadParameter, nil,
			"userkey= is not set: pass the user key from the invitation email")
	}
	apiRoots, apiPEM, err := loadCACert(p.CACert)
	if err != nil {
		return nil, err
	}
	key, csr, err := tenantapi.NewKey("invited device")
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	req := tenantapi.InviteEnrollRequest{UserKey: string(p.UserKey), DeviceName: deviceName(), CSR: csr,
		EnrollAuthToken: string(p.EnrollAuthToken)}
	log.Info("enrolling", zap.String("method", "invite"), zap.String("url", base), zap.Stringer("params", p))
	id, err := enrollDevice(ctx, base, "/v1/enroll/invite", &req, key, apiRoots, apiPEM, p, log)
	if err != nil {
		return nil, err
	}
	if p.UPN != "" && !strings.EqualFold(p.UPN, id.User) {
		// Not fatal to the tenant, but the administrator asked for someone else.
		log.Warn("invitation is for another user than upn=", zap.String("upn", p.UPN), zap.String("invited", id.User))
	}
	return id, nil
}
