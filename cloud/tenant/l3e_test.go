package tenant

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

const l3eTenant = `tenant: demo
org_key: demo-org-key-8c1f4e27b9d35a60
pop: {address: 10.10.0.1:8443, server_name: pop.demo.test}
users:
  - {upn: alice@demo.test, groups: [helpdesk]}
  - {upn: bob@demo.test}
publishers: [{name: pub1, token: demo-publisher-token-4a9e0c7d21f3}]
apps:
  - {id: web, hosts: [web.corp.test], tcp: "80", publishers: [pub1]}
  - {id: rdp, hosts: [10.20.0.0/24], tcp: "3389,5900", tunnel: l3e}
  - {id: voip, hosts: [10.77.0.0/24], udp: "*", tcp: "5060", tunnel: l3e}
l3e:
  gateway: {address: "10.10.0.1:443", server_name: gateway.demo.test}
  pool: 10.77.0.0/24
  dns: [10.20.0.12]
  suffix: corp.test
  ddns: {server: "10.20.0.12:53", zone: corp.test., key_name: ztagent-ddns., algorithm: hmac-sha256,
         secret: dNtRwXD+n6KEQ8egiN9ytSBpETkvZc41RdcYLo2Qx8M=, ttl: 60}
  revoked_devices: [stolen-laptop]
steering:
  - {name: all, users: ["*"], apps: ["*"], client: {dtls: true}}
policy:
  - {name: helpdesk, groups: [helpdesk], apps: [rdp, voip, web]}
  - {name: others, users: ["*"], apps: [voip, web]}
`

func TestL3EDevice(t *testing.T) {
	tn, err := Parse("l3e.yaml", []byte(l3eTenant))
	if err != nil {
		t.Fatal(err)
	}
	if tn.L3E.PoolPrefix() != netip.MustParsePrefix("10.77.0.0/24") {
		t.Fatalf("pool %s", tn.L3E.PoolPrefix())
	}
	dev := func(id, upn string) tenantapi.Peer {
		return tenantapi.Peer{Tenant: "demo", Kind: tenantapi.KindDevice, Device: id, User: upn}
	}
	tp, err := tn.L3EDevice(dev("laptop1", "alice@demo.test"))
	if err != nil {
		t.Fatal(err)
	}
	// The DNS server lies in the rdp app's prefix: port 53 is added to it.
	if len(tp.Routes) != 2 || tp.Routes[0].App != "rdp" || tp.Routes[0].UDP != "53" || tp.Routes[0].TCP != "3389,5900,53" ||
		tp.Routes[1].UDP != "*" || tp.Suffix != "corp.test" ||
		tp.DDNS == nil || tp.DDNS.Zone != "corp.test." {
		t.Fatalf("alice's template %+v", tp)
	}
	// Bob may not use rdp: the DNS server gets a route of its own.
	if tp, _ := tn.L3EDevice(dev("laptop2", "bob@demo.test")); len(tp.Routes) != 2 || tp.Routes[0].App != "voip" ||
		tp.Routes[1].Prefix != netip.MustParsePrefix("10.20.0.12/32") {
		t.Fatalf("bob's routes %+v", tp.Routes)
	}
	for _, p := range []tenantapi.Peer{dev("stolen-laptop", "alice@demo.test"), dev("x", "mallory@demo.test"),
		{Tenant: "demo", Kind: tenantapi.KindPublisher, Publisher: "pub1"}, {Tenant: "other", Kind: tenantapi.KindDevice, Device: "y", User: "alice@demo.test"}} {
		if _, err := tn.L3EDevice(p); !errors.Is(err, ErrL3ERefused) {
			t.Errorf("%+v admitted: %v", p, err)
		}
	}
	// The agent config leaves the L3E apps out: the agent learns them from the gateway.
	cfg, err := tn.AgentConfig("alice@demo.test")
	if err != nil || len(cfg.Steering.Apps) != 1 || cfg.Steering.Apps[0].ID != "web" ||
		cfg.Gateway == nil || cfg.Gateway.ServerName != "gateway.demo.test" {
		t.Fatalf("agent config apps %+v, %v", cfg.Steering.Apps, err)
	}
}

func TestL3EBroken(t *testing.T) {
	bad := strings.NewReplacer(
		"pool: 10.77.0.0/24", "pool: 10.77.0.1/24",
		"tcp: \"3389,5900\"", "tcp: \"3389,0\"",
		"hosts: [10.77.0.0/24]", "hosts: [10.20.0.128/25, voip.corp.test]",
		"dns: [10.20.0.12]", "dns: [dns.corp.test]",
		"algorithm: hmac-sha256", "algorithm: hmac-md5",
	).Replace(l3eTenant)
	_, err := Parse("l3e.yaml", []byte(bad))
	if err == nil {
		t.Fatal("broken l3e tenant accepted")
	}
	for _, want := range []string{
		`l3e.pool: "10.77.0.1/24": want a network prefix`,
		`apps[1].tcp: "3389,0": invalid port "0"`,
		`apps[2].hosts[0]: "10.20.0.128/25": overlaps apps[1].hosts[0] (10.20.0.0/24)`,
		`apps[2].hosts[1]: "voip.corp.test": an L3E app takes addresses`,
		`l3e.dns[0]: "dns.corp.test": not an IP address`,
		`l3e.ddns.algorithm: "hmac-md5" is not supported`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
