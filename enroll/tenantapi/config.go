package tenantapi

import "github.com/ztagent/ztagent/steering"

// AgentConfig is everything the tenant tells one enrolled user's agent: who it
// is, which PoP to dial, and the steering configuration to apply as one snapshot.
type AgentConfig struct {
	Tenant   string          `json:"tenant"`
	User     string          `json:"user"`
	PoP      PoPInfo         `json:"pop"`
	Steering steering.Config `json:"steering"`
}

// PoPInfo says where the agent dials the L7 tunnel.
type PoPInfo struct {
	// Address is the PoP's public host:port.
	Address string `json:"address" yaml:"address"`
	// ServerName is the TLS server name the PoP's certificate carries.
	ServerName string `json:"server_name" yaml:"server_name"`
}
