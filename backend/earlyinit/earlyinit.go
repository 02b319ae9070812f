// Package earlyinit is for the conformance suite's test enclave only: it shows whether a back-end
// confines an enclave from its first instruction.
//
// Go initialises packages in the order of their import paths, among those whose own imports are
// initialised. This package's path sorts before github.com/asylo-go/asylo/enclave, whose init
// function sandboxes a process that sim started directly, and it imports neither that package
// nor anything that does; so its init function runs first, as the init functions of many of an
// application's packages would (any path that sorts before it: cloud.google.com/..., example.com/...,
// or a package of the application's own module). There it tries what the sandbox forbids.
package earlyinit

// Result is what the init function found.
type Result struct {
	// Attempts maps each forbidden action to the error it got; "" means it succeeded.
	Attempts map[string]string
	// Seccomp, NoNewPrivs and Dumpable are prctl(PR_GET_SECCOMP), prctl(PR_GET_NO_NEW_PRIVS) and
	// prctl(PR_GET_DUMPABLE) as the init function saw them (-1 if unreadable).
	Seccomp, NoNewPrivs, Dumpable int
}

// Found is what this package's init function found, or nil outside a sim enclave (it tries
// nothing in a host process, which imports this package with the conformance suite) and on
// systems other than Linux.
var Found *Result
