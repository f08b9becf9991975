// healthserver: a gRPC server with the standard health service
// (grpc.health.v1.Health) that names itself in every answer, for
// tests/integration/test_grpc_resolver.py.
//
//	healthserver -id web-a -port-file FILE
//
// Listens on 127.0.0.1 (port 0: any free one, written to -port-file once
// listening). Every Check answers SERVING with the header "backend: <id>".
// stdout gets one JSON line per connection opened or closed:
//
//	{"ev":"conn","state":"begin","open":1,"total":1,"t":<unix ns>}
//
// Built offline in GOPATH mode from Debian's golang-google-grpc-dev.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
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

// connCounter is a stats.Handler that reports connections.
type connCounter struct {
	mu          sync.Mutex
	open, total int
}

func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats) {}
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s.(type) {
	case *stats.ConnBegin:
		c.open++
		c.total++
		emit(map[string]interface{}{"ev": "conn", "state": "begin",
			"open": c.open, "total": c.total})
	case *stats.ConnEnd:
		c.open--
		emit(map[string]interface{}{"ev": "conn", "state": "end",
			"open": c.open, "total": c.total})
	}
}

// named is the standard health server, with its identity in a header.
type named struct {
	*health.Server
	id string
}

func (n named) Check(ctx context.Context, in *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	grpc.SetHeader(ctx, metadata.Pairs("backend", n.id))
	return n.Server.Check(ctx, in)
}

func main() {
	id := flag.String("id", "", "identity reported in the backend header")
	port := flag.Int("port", 0, "port on 127.0.0.1 (0: any)")
	portFile := flag.String("port-file", "", "write the port here")
	flag.Parse()
	if *id == "" {
		fmt.Fprintln(os.Stderr, "healthserver: -id is required")
		os.Exit(2)
	}
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthserver:", err)
		os.Exit(1)
	}
	srv := grpc.NewServer(grpc.StatsHandler(&connCounter{}))
	healthpb.RegisterHealthServer(srv, named{health.NewServer(), *id})
	if *portFile != "" {
		p := lis.Addr().(*net.TCPAddr).Port
		tmp := *portFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(fmt.Sprint(p)), 0o644); err != nil ||
			os.Rename(tmp, *portFile) != nil {
			fmt.Fprintln(os.Stderr, "healthserver: cannot write the port file")
			os.Exit(1)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.Stop()
	}()
	emit(map[string]interface{}{"ev": "listening", "addr": lis.Addr().String()})
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "healthserver:", err)
		os.Exit(1)
	}
}
