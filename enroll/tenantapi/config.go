package tenantapi

import "github.com/ztagent/ztagent/steering"

// AgentConfig is everything the tenant tells one enrolled user's agent: who it
// is, which PoP to dial, and the steering configuration to apply as one snapshot.
type AgentConfig struct {
	Tenant string  `json:"tenant"`
	User   string  `json:"user"`
	PoP    PoPInfo `json:"pop"`
	// PoPs, when set, lists every PoP the agent may use (PoP is then one of
	// them, for older agents): the agent connects to the one with the lowest
	// RTT and fails over to the next.
	PoPs     []PoPInfo       `json:"pops,omitempty"`
	Steering steering.Config `json:"steering"`
	// Gateway, when set, is the L3E gateway (DTLS, UDP) the agent dials:
	// the tenant names it to users whose steering sets client.dtls.
	Gateway *PoPInfo `json:"gateway,omitempty"`
}

// PoPInfo says where the agent dials the L7 tunnel.
type PoPInfo struct {
	// Address is the PoP's public host:port.
	Address string `json:"address" yaml:"address"`
	// ServerName is the TLS server name the PoP's certificate carries.
	ServerName string `json:"server_name" yaml:"server_name"`
}

// DialList returns the PoPs an agent may dial: PoPs, or PoP alone.
func (c *AgentConfig) DialList() []PoPInfo { return PoPList(c.PoP, c.PoPs) }

// PoPList is the PoPs to dial of a tenant that names pop and pops: pops when
// it lists any (the tenant has several), else pop alone.
func PoPList(pop PoPInfo, pops []PoPInfo) []PoPInfo {
	if len(pops) > 0 {
		return pops
	}
	return []PoPInfo{pop}
}
