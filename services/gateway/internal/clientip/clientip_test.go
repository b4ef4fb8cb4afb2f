package clientip

import (
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	none := New(nil)
	cases := []struct {
		name   string
		r      *Resolver
		remote string
		xff    []string
		want   string
	}{
		{"no proxies: the socket, whatever the header says", none, "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"untrusted peer: header ignored", trusted, "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted peer: the right-most hop", trusted, "10.1.1.1:5000", []string{"1.2.3.4, 198.51.100.2"}, "198.51.100.2"},
		{"trusted chain: skip our own proxies", trusted, "10.1.1.1:5000", []string{"198.51.100.2, 10.2.2.2", "10.3.3.3"}, "198.51.100.2"},
		{"spoofed left-most entries never count", trusted, "10.1.1.1:5000", []string{"6.6.6.6, 198.51.100.2"}, "198.51.100.2"},
		{"trusted peer without header: the peer", trusted, "10.1.1.1:5000", nil, "10.1.1.1"},
		{"garbage hop: the last verified address", trusted, "10.1.1.1:5000", []string{"1.2.3.4, not-an-ip"}, "10.1.1.1"},
		{"all hops trusted: the left-most", trusted, "10.1.1.1:5000", []string{"10.9.9.9, 10.8.8.8"}, "10.9.9.9"},
		{"IPv6 loopback proxy", trusted, "[::1]:5000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv4-mapped peer", none, "[::ffff:203.0.113.7]:5000", nil, "203.0.113.7"},
		{"no port", none, "203.0.113.7", nil, "203.0.113.7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := c.r.ClientIP(c.remote, c.xff); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	if none.PeerTrusted("10.1.1.1:1") || !trusted.PeerTrusted("10.1.1.1:1") || trusted.PeerTrusted("bogus") {
		t.Fatal("PeerTrusted")
	}
}
