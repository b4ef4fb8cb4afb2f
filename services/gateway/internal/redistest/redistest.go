// Package redistest runs a throwaway redis-server for a test. The Redis rate-limit counter
// is tested against the real server, never a fake; on a machine without redis-server the
// test fails with how to install it (tests never skip).
package redistest

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Start runs redis-server on a free loopback port without persistence, stops it when the
// test ends, and returns its redis:// URL once it answers PING.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not on PATH: the Redis rate-limit counter is tested against a real Redis. " +
			"Install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() { // drain, so the server never blocks on its log
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
		}
	}()
	url := "redis://127.0.0.1:" + port
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for client.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not answer within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url
}
