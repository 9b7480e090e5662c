package pop

// UDP flows (connect-udp streams, tunnel/l7) take serveConnect's path:
// authorised per flow as TCP ones are, with the tenant's policy checking the
// port against the app's UDP ports (l7.Target.Proto), stitched to a
// connect-udp stream on a publisher, and relayed byte for byte, since the
// capsule framing is the agent's and the publisher's business. x/net's
// server takes extended CONNECT only when told to, which this import does.

import _ "github.com/ztagent/ztagent/tunnel/l7/xconnect"
