package hms

// Internals the black-box tests (package hms_test) reach.
var CheckABIVersion = checkABI

// DisableMethodCache makes rt call by name only (its cache refuses every
// handle), to measure and test the cache against the path without it.
func DisableMethodCache(rt *Runtime) { rt.state.methods.flush(true) }
