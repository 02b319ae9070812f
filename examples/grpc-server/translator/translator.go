// Package translator is the grpc-server example's service: Asylo's translator, which turns a few
// English words into French. It carries JSON messages over gRPC with a codec chosen per server
// and connection, so the example needs no protoc step.
package translator

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Request and Response are the messages of Translate.
type Request struct {
	Word string `json:"word"`
}

type Response struct {
	Translation string `json:"translation"`
}

// Codec is the JSON codec both sides use (grpc.ForceServerCodec / grpc.ForceCodec).
type Codec struct{}

func (Codec) Marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func (Codec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func (Codec) Name() string                    { return "json" }

// Server implements the service.
type Server struct {
	// Authorize, if set, runs first in every call (for example grpccreds.CheckPeer).
	Authorize func(ctx context.Context) error
}

var dictionary = map[string]string{"asylo": "asile", "hello": "bonjour", "enclave": "enclave", "secret": "secret", "world": "monde"}

// Translate looks the word up.
func (s *Server) Translate(ctx context.Context, req *Request) (*Response, error) {
	if s.Authorize != nil {
		if err := s.Authorize(ctx); err != nil {
			return nil, err
		}
	}
	t, ok := dictionary[req.Word]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no translation for %q", req.Word)
	}
	return &Response{Translation: t}, nil
}

// ServiceDesc describes the service to grpc.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: "asylo.examples.Translator",
	HandlerType: (*interface{})(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Translate",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req Request
			if err := dec(&req); err != nil {
				return nil, err
			}
			return srv.(*Server).Translate(ctx, &req)
		},
	}},
}

// Translate calls the service over conn.
func Translate(ctx context.Context, conn *grpc.ClientConn, word string, opts ...grpc.CallOption) (string, error) {
	var resp Response
	opts = append(opts, grpc.ForceCodec(Codec{}))
	if err := conn.Invoke(ctx, "/asylo.examples.Translator/Translate", &Request{Word: word}, &resp, opts...); err != nil {
		return "", err
	}
	return resp.Translation, nil
}
