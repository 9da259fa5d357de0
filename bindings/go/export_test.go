package hms

// Internals the black-box tests (package hms_test) reach.
var CheckABIVersion = checkABI
