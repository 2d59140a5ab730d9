// quartet-transform-go: the benchmark peer "what a user would pick instead of
// Quartet", quartet.transform.v1.TransformService on grpc-go (Debian's 1.33,
// built in GOPATH mode with no module downloads; see bench/go/README.md).
//
// It answers Transform the way quartet-transform does for the benchmark's
// input (ASCII text): UPPER and LOWER map case, REVERSE reverses, an unset or
// unknown operation is INVALID_ARGUMENT. It uses Go's simple case mapping
// (strings.ToUpper, with its ASCII fast path) and reverses code points rather
// than grapheme clusters: cheaper than our full Unicode rules, never dearer,
// so the comparison leans the peer's way.
//
// Like our servers it prints "<name> listening on ADDR" on stdout once bound,
// serves grpc.health.v1.Health, and stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "quartet/transform/v1"
)

// Largest message either way, as our servers default to (4 MiB).
const maxMessageBytes = 4 * 1024 * 1024

type transformServer struct{}

func (*transformServer) Transform(_ context.Context, request *pb.TransformRequest) (*pb.TransformResponse, error) {
	text, err := apply(request.GetOperation(), request.GetText())
	if err != nil {
		return nil, err
	}
	return &pb.TransformResponse{Text: text}, nil
}

// TransformStream answers each request in order; the first invalid one ends
// the stream with its status, as ours does.
func (*transformServer) TransformStream(stream pb.TransformService_TransformStreamServer) error {
	for {
		request, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		text, err := apply(request.GetOperation(), request.GetText())
		if err != nil {
			return err
		}
		if err := stream.Send(&pb.TransformResponse{Text: text}); err != nil {
			return err
		}
	}
}

func apply(operation pb.Operation, text string) (string, error) {
	switch operation {
	case pb.Operation_OPERATION_UPPER:
		return strings.ToUpper(text), nil
	case pb.Operation_OPERATION_LOWER:
		return strings.ToLower(text), nil
	case pb.Operation_OPERATION_REVERSE:
		runes := []rune(text)
		for i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {
			runes[i], runes[j] = runes[j], runes[i]
		}
		return string(runes), nil
	case pb.Operation_OPERATION_UNSPECIFIED:
		return "", status.Error(codes.InvalidArgument, "operation: must be set (UPPER, LOWER or REVERSE)")
	default:
		return "", status.Errorf(codes.InvalidArgument, "operation: %d is not a known operation", operation)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	flag.Parse()

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen on %s: %v", *listen, err)
	}
	server := grpc.NewServer(grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes))
	pb.RegisterTransformServiceServer(server, &transformServer{})
	healthServer := health.NewServer()
	healthServer.SetServingStatus("quartet.transform.v1.TransformService", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(server, healthServer)

	// The announce line the benchmark scripts read, as our servers print it.
	fmt.Printf("transform-go listening on %s\n", listener.Addr())
	os.Stdout.Sync()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		healthServer.Shutdown()
		server.GracefulStop()
	}()
	if err := server.Serve(listener); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
