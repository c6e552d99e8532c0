// Package redistest starts real redis-server processes (standalone or a 3-master Cluster) on
// free loopback ports for tests and benchmarks.
//
// The core API (Start, StartCluster) returns errors and needs no *testing.T, so a benchmark
// program can use it too; Standalone and NewCluster wrap it for tests, failing the test (never
// skipping it) when redis-server is missing, and registering cleanup.
//
// Every server runs in a private temporary directory with persistence off, listens on 127.0.0.1
// only, and is SIGKILLed by the kernel if the process that started it dies (Linux).
package redistest
