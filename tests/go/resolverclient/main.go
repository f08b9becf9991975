// resolverclient: a gRPC client that finds its servers through etcd's
// official naming resolver (go.etcd.io/etcd/clientv3/naming/resolver, the
// etcd 3.4 import path Debian's golang-etcd-server-dev ships), for
// tests/integration/test_grpc_resolver.py.
//
//	resolverclient -etcd 127.0.0.1:2379 -target etcd:///services/web/ \
//	    -balancer round_robin -interval 20ms
//
// It calls grpc.health.v1.Health/Check every -interval and prints one JSON
// line on stdout per event, each with "t" (Unix time in ns):
//
//	{"ev":"resolver","addrs":[{"addr":"127.0.0.1:9001","md":...}]}
//	    every state the etcd resolver hands to gRPC (logged before gRPC
//	    sees it, so a panic in the balancer comes after its cause)
//	{"ev":"balancer","addrs":[...]}          what the balancer was given
//	{"ev":"subconn_new","sc":1,"addrs":[...]}
//	{"ev":"subconn_state","sc":1,"state":"READY"}
//	{"ev":"subconn_remove","sc":1}
//	{"ev":"rpc","ok":true,"backend":"web-a"}
//	{"ev":"rpc","ok":false,"code":"Unavailable","err":"..."}
//
// Built offline in GOPATH mode (GO111MODULE=off) from Debian's packages.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/clientv3"
	etcdresolver "go.etcd.io/etcd/clientv3/naming/resolver"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

var (
	outMu sync.Mutex
	out   = json.NewEncoder(os.Stdout)
)

func emit(v map[string]interface{}) {
	v["t"] = time.Now().UnixNano()
	outMu.Lock()
	defer outMu.Unlock()
	out.Encode(v)
}

func addrList(as []resolver.Address) []map[string]interface{} {
	l := make([]map[string]interface{}, 0, len(as))
	for _, a := range as {
		l = append(l, map[string]interface{}{"addr": a.Addr, "md": a.Metadata})
	}
	return l
}

// ---- resolver: the etcd builder, with its updates logged ----

type loggingBuilder struct{ inner resolver.Builder }

func (b loggingBuilder) Scheme() string { return b.inner.Scheme() }

func (b loggingBuilder) Build(t resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	return b.inner.Build(t, loggingCC{cc}, o)
}

type loggingCC struct{ resolver.ClientConn }

func (c loggingCC) UpdateState(s resolver.State) {
	emit(map[string]interface{}{"ev": "resolver", "addrs": addrList(s.Addresses)})
	c.ClientConn.UpdateState(s)
}

// ---- balancer: a standard one, with its subconns logged ----

type loggingBalancerBuilder struct {
	inner balancer.Builder
	name  string
}

func (b loggingBalancerBuilder) Name() string { return b.name }

func (b loggingBalancerBuilder) Build(cc balancer.ClientConn, o balancer.BuildOptions) balancer.Balancer {
	lcc := &loggingBCC{ClientConn: cc, ids: map[balancer.SubConn]int{}}
	return &loggingBalancer{inner: b.inner.Build(lcc, o), cc: lcc}
}

type loggingBCC struct {
	balancer.ClientConn
	mu   sync.Mutex
	ids  map[balancer.SubConn]int
	next int
}

func (c *loggingBCC) id(sc balancer.SubConn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[sc]
}

func (c *loggingBCC) NewSubConn(as []resolver.Address, o balancer.NewSubConnOptions) (balancer.SubConn, error) {
	sc, err := c.ClientConn.NewSubConn(as, o)
	if err != nil {
		emit(map[string]interface{}{"ev": "subconn_error", "err": err.Error()})
		return sc, err
	}
	c.mu.Lock()
	c.next++
	c.ids[sc] = c.next
	n := c.next
	c.mu.Unlock()
	emit(map[string]interface{}{"ev": "subconn_new", "sc": n, "addrs": addrList(as)})
	return sc, nil
}

func (c *loggingBCC) RemoveSubConn(sc balancer.SubConn) {
	emit(map[string]interface{}{"ev": "subconn_remove", "sc": c.id(sc)})
	c.ClientConn.RemoveSubConn(sc)
}

type loggingBalancer struct {
	inner balancer.Balancer
	cc    *loggingBCC
}

func (b *loggingBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	emit(map[string]interface{}{"ev": "balancer", "addrs": addrList(s.ResolverState.Addresses)})
	return b.inner.UpdateClientConnState(s)
}

func (b *loggingBalancer) ResolverError(err error) {
	emit(map[string]interface{}{"ev": "resolver_error", "err": err.Error()})
	b.inner.ResolverError(err)
}

func (b *loggingBalancer) UpdateSubConnState(sc balancer.SubConn, s balancer.SubConnState) {
	emit(map[string]interface{}{"ev": "subconn_state", "sc": b.cc.id(sc),
		"state": s.ConnectivityState.String()})
	b.inner.UpdateSubConnState(sc, s)
}

func (b *loggingBalancer) Close() { b.inner.Close() }

func main() {
	endpoints := flag.String("etcd", "127.0.0.1:2379", "etcd endpoints, comma separated")
	target := flag.String("target", "etcd:///services/web/", "gRPC dial target")
	lb := flag.String("balancer", "round_robin", "round_robin or pick_first")
	interval := flag.Duration("interval", 20*time.Millisecond, "time between RPCs")
	timeout := flag.Duration("timeout", time.Second, "deadline of each RPC")
	flag.Parse()

	inner := balancer.Get(*lb)
	if inner == nil {
		fmt.Fprintln(os.Stderr, "resolverclient: no balancer", *lb)
		os.Exit(2)
	}
	name := "logging_" + *lb
	balancer.Register(loggingBalancerBuilder{inner: inner, name: name})

	// Quiet: the etcd client's warnings would go to stderr.
	lc := zap.NewProductionConfig()
	lc.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*endpoints, ","),
		DialTimeout: 5 * time.Second,
		LogConfig:   &lc,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "resolverclient: etcd:", err)
		os.Exit(1)
	}
	defer cli.Close()
	r, err := etcdresolver.NewBuilder(cli)
	if err != nil {
		fmt.Fprintln(os.Stderr, "resolverclient: resolver:", err)
		os.Exit(1)
	}
	conn, err := grpc.Dial(*target, grpc.WithInsecure(),
		grpc.WithResolvers(loggingBuilder{r}),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(
			`{"loadBalancingConfig":[{"%s":{}}]}`, name)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "resolverclient: dial:", err)
		os.Exit(1)
	}
	defer conn.Close()
	emit(map[string]interface{}{"ev": "start", "target": *target, "balancer": *lb})

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	hc := healthpb.NewHealthClient(conn)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		select {
		case <-sig:
			emit(map[string]interface{}{"ev": "exit"})
			return
		case <-tick.C:
		}
		var md metadata.MD
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md))
		cancel()
		if err != nil {
			emit(map[string]interface{}{"ev": "rpc", "ok": false,
				"code": status.Code(err).String(), "err": err.Error()})
			continue
		}
		backend := ""
		if v := md.Get("backend"); len(v) > 0 {
			backend = v[0]
		}
		emit(map[string]interface{}{"ev": "rpc", "ok": true, "backend": backend})
	}
}
