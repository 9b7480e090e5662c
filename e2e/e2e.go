// Package e2e holds the end-to-end tests: real ztagent, ztcloud and client
// programs (curl, dig) in network namespaces on one Linux machine, built from
// scripts/lab.sh so that the tests, `make demo` and `make lab-up` share one
// topology. They need root and run only under `make e2e` (ZT_E2E=1); anywhere
// else they skip and say so.
package e2e
