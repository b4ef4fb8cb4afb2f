// Package clientip decides which address a request comes from, for per-IP rate limits
// and the X-Forwarded-For sent upstream. The socket address is the truth; a client-sent
// X-Forwarded-For is believed only hop by hop from the right, and only while the hop that
// reported it is one of our configured trusted proxies (ARCHITECTURE.md, "Traps").
package clientip

import (
	"net"
	"net/netip"
	"strings"
)

// Resolver knows the trusted proxies.
type Resolver struct {
	trusted []netip.Prefix
}

// New is a Resolver that trusts the given networks. With none, only the socket counts.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// PeerTrusted reports whether the socket peer of remoteAddr is a trusted proxy.
func (r *Resolver) PeerTrusted(remoteAddr string) bool {
	a, ok := peer(remoteAddr)
	return ok && r.isTrusted(a)
}

// ClientIP is the client's address: the socket peer, or when the peer is a trusted proxy,
// the right-most X-Forwarded-For hop that is not itself trusted (the left-most entries
// are whatever the client chose to send and never count).
func (r *Resolver) ClientIP(remoteAddr string, xff []string) string {
	a, ok := peer(remoteAddr)
	if !ok {
		return remoteAddr
	}
	if !r.isTrusted(a) {
		return a.String()
	}
	hops := splitHops(xff)
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(hops[i])
		if err != nil {
			// A garbled hop was written by whoever stands left of our last trusted proxy;
			// stop at the last address we could verify.
			return a.String()
		}
		h = h.Unmap()
		if !r.isTrusted(h) {
			return h.String()
		}
		a = h
	}
	// Every hop was one of our proxies: the left-most is the best we know.
	return a.String()
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func peer(remoteAddr string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func splitHops(xff []string) []string {
	var hops []string
	for _, line := range xff {
		for _, h := range strings.Split(line, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	return hops
}
