# Benchmarks: see bench/run.sh.  (Included from the Makefile.)
bench: lib
	@bash bench/run.sh
