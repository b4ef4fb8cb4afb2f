package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// benchClientsPerCPU is the concurrency of the benchmarks, per GOMAXPROCS.
const benchClientsPerCPU = 8

// benchClient keeps connections alive across the parallel requests of a benchmark.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}

func benchPost(b *testing.B, url string, body any) []byte {
	raw, _ := json.Marshal(body)
	resp, err := benchClient.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	return out
}

// BenchmarkSignIn measures dev-login sign-ins per second (a user upsert, a session, a
// refresh token and an RS256 signature each) against real Postgres.
func BenchmarkSignIn(b *testing.B) {
	env := setup(b, withDevLogin)
	url := env.url + "/api/v1/auth/dev/login"
	emails := make([]string, 64)
	for i := range emails {
		emails[i] = newEmail()
	}
	// Several clients per core: the requests wait on Postgres far more than they compute.
	b.SetParallelism(benchClientsPerCPU)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			benchPost(b, url, map[string]string{"email": emails[i%len(emails)], "name": "Bench"})
			i++
		}
	})
	report(b, start, cpu)
}

// BenchmarkRefresh measures refresh-token rotations per second: each goroutine rotates its
// own session's token, so every request takes the row lock, spends one token and stores one.
func BenchmarkRefresh(b *testing.B) {
	env := setup(b, withDevLogin)
	login := env.url + "/api/v1/auth/dev/login"
	refresh := env.url + "/api/v1/auth/refresh"
	// Several clients per core: the requests wait on Postgres far more than they compute.
	b.SetParallelism(benchClientsPerCPU)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		var tok tokens
		if err := json.Unmarshal(benchPost(b, login, map[string]string{"email": newEmail(), "name": "Bench"}), &tok); err != nil {
			b.Fatal(err)
		}
		for pb.Next() {
			if err := json.Unmarshal(benchPost(b, refresh, map[string]string{"refresh_token": tok.RefreshToken}), &tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	report(b, start, cpu)
}

// report gives the throughput and this process's CPU per request (service and client;
// Postgres and NATS run elsewhere), which stays comparable on a busy machine where
// req/s does not.
func report(b *testing.B, start time.Time, cpuStart time.Duration) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	b.ReportMetric(float64(cpuTime(b)-cpuStart)/float64(time.Millisecond)/float64(b.N), "cpu-ms/req")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
