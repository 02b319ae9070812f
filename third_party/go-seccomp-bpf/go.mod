module github.com/elastic/go-seccomp-bpf

go 1.23.0

require (
	golang.org/x/net v0.41.0
	golang.org/x/sys v0.33.0
)
