// Package config is what the secure-grpc host tells its enclaves. It comes from the host, so the
// enclaves treat it as input: on sim the host is the root of trust for the platform anyway; on
// hardware the verifier roots are the vendors' and the expected measurements would be built into
// the enclaves or signed.
package config

// Server configures the server enclave.
type Server struct {
	Addr string `json:"addr"`
	// SimRootPEM is the sim platform root the server accepts client evidence from.
	SimRootPEM string `json:"sim_root_pem"`
	// AllowedClient is the only client measurement (hex) allowed to call Translate.
	AllowedClient string `json:"allowed_client"`
}

// Call asks a client enclave to call the server.
type Call struct {
	Addr       string `json:"addr"`
	Word       string `json:"word"`
	SimRootPEM string `json:"sim_root_pem"`
	// Server is the server measurement (hex) the client insists on.
	Server string `json:"server"`
}
