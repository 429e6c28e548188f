# Tests: see tests/run.sh.  (Owned by the tests; included from the Makefile.)
test: lib
	@bash tests/run.sh
