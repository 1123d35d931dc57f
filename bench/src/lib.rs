//! The floors `make bench-lambda` (scripts/bench-lambda.py) runs beside the receivers: see
//! the binaries in `src/bin/`. Nothing here is deployed.
