package testenclave

// ProbeResult is what Probe found. Attempts maps each forbidden action to the error it got; an
// empty string means the action SUCCEEDED (a sandbox failure).
type ProbeResult struct {
	Attempts    map[string]string
	Dumpable    int
	NoNewPrivs  int
	CoreLimit   uint64
	UID, GID    int
	PID         int
	PPID        int
	Hostname    string
	TimeWorks   bool
	RandomWorks bool
}
