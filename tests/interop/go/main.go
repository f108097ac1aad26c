// ce-go: the CloudEvents Go SDK (github.com/cloudevents/sdk-go/v2) as a sender to, and a receiver of, Ripple.
//
//	ce-go send --url U --mode binary|structured --id ID --type T --source S
//	           [--data TEXT] [--datacontenttype CT] [--subject S] [--time RFC3339] [--ext k=v]...
//	ce-go receive --port P [--host 127.0.0.1] [--reply-type T]
//
// send prints one JSON line: {"status": <HTTP status>, "ack": bool, "result": "...", "event": {...}, "wire": {...}},
// where event is what the SDK was asked to send and wire is the request it made: {"headers": {lower-case name:
// value}, "body_base64": ...}. receive prints {"listening": "host:port"} once it accepts connections, then one
// line per received event: {"event": {...}, "content_type": "<Content-Type of the request>"}. With --reply-type it
// answers each event with a reply event of that type (id "reply-<id>", source "/interop/go"), which Ripple stores.
//
// An event is printed as {"specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject",
// "time", "extensions": {name: string}, "data": text or null, "data_base64": base64 or null}.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
)

type extFlags map[string]string

func (e extFlags) String() string { return fmt.Sprint(map[string]string(e)) }

func (e extFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("--ext wants name=value, got %q", v)
	}
	e[name] = value
	return nil
}

// optional is a string flag that remembers whether it was given (so --data "" differs from no --data).
type optional struct {
	value string
	set   bool
}

func (o *optional) String() string { return o.value }

func (o *optional) Set(v string) error {
	o.value, o.set = v, true
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: ce-go send|receive [flags]")
	}
	var err error
	switch os.Args[1] {
	case "send":
		err = send(os.Args[2:])
	case "receive":
		err = receive(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q: send or receive", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "ce-go:", msg)
	os.Exit(2)
}

func printJSON(v any) {
	line, err := json.Marshal(v)
	if err != nil {
		fail(err.Error())
	}
	fmt.Println(string(line))
}

func describe(e event.Event) map[string]any {
	out := map[string]any{
		"specversion":     e.SpecVersion(),
		"id":              e.ID(),
		"source":          e.Source(),
		"type":            e.Type(),
		"datacontenttype": nil,
		"dataschema":      nil,
		"subject":         nil,
		"time":            nil,
		"data":            nil,
		"data_base64":     nil,
	}
	if ct := e.DataContentType(); ct != "" {
		out["datacontenttype"] = ct
	}
	if ds := e.DataSchema(); ds != "" {
		out["dataschema"] = ds
	}
	if s := e.Subject(); s != "" {
		out["subject"] = s
	}
	if t := e.Time(); !t.IsZero() {
		out["time"] = t.UTC().Format(time.RFC3339Nano)
	}
	extensions := map[string]string{}
	for name, value := range e.Extensions() {
		text, err := types.Format(value)
		if err != nil {
			text = fmt.Sprint(value)
		}
		extensions[name] = text
	}
	out["extensions"] = extensions
	if data := e.Data(); data != nil {
		out["data_base64"] = base64.StdEncoding.EncodeToString(data)
		if utf8.Valid(data) {
			out["data"] = string(data)
		}
	}
	return out
}

func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	url := fs.String("url", "", "ingress URL")
	mode := fs.String("mode", "binary", "binary or structured")
	id := fs.String("id", "", "event id")
	typ := fs.String("type", "", "event type")
	source := fs.String("source", "", "event source")
	subject := fs.String("subject", "", "event subject")
	at := fs.String("time", "", "event time (RFC 3339)")
	contentType := fs.String("datacontenttype", "", "datacontenttype (default application/json when --data is given)")
	var data optional
	fs.Var(&data, "data", "event data, sent as these bytes")
	exts := extFlags{}
	fs.Var(exts, "ext", "extension name=value (repeatable)")
	_ = fs.Parse(args)
	if *url == "" {
		return errors.New("send: --url is required")
	}

	e := cloudevents.NewEvent()
	e.SetID(*id)
	e.SetType(*typ)
	e.SetSource(*source)
	if *subject != "" {
		e.SetSubject(*subject)
	}
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return fmt.Errorf("send: --time: %w", err)
		}
		e.SetTime(t)
	}
	for name, value := range exts {
		e.SetExtension(name, value)
	}
	if data.set {
		ct := *contentType
		if ct == "" {
			ct = cloudevents.ApplicationJSON
		}
		if err := e.SetData(ct, []byte(data.value)); err != nil {
			return fmt.Errorf("send: data: %w", err)
		}
	} else if *contentType != "" {
		e.SetDataContentType(*contentType)
	}

	wire := &capture{next: nethttp.DefaultTransport}
	p, err := cehttp.New(cehttp.WithTarget(*url), cehttp.WithRoundTripper(wire))
	if err != nil {
		return err
	}
	// client.New without the defaulters of NewClientHTTP (WithTimeNow, WithUUIDs): send exactly this event.
	c, err := client.New(p)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch *mode {
	case "binary":
		ctx = binding.WithForceBinary(ctx)
	case "structured":
		ctx = binding.WithForceStructured(ctx)
	default:
		return fmt.Errorf("send: --mode must be binary or structured, got %q", *mode)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res := c.Send(ctx, e)
	status := 0
	var httpResult *cehttp.Result
	if cloudevents.ResultAs(res, &httpResult) {
		status = httpResult.StatusCode
	}
	result := ""
	if res != nil {
		result = res.Error()
	}
	printJSON(map[string]any{
		"status": status, "ack": cloudevents.IsACK(res), "result": result, "event": describe(e), "wire": wire.seen,
	})
	return nil
}

// capture records the request the SDK put on the wire: its headers and body.
type capture struct {
	next nethttp.RoundTripper
	seen map[string]any
}

func (c *capture) RoundTrip(req *nethttp.Request) (*nethttp.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	headers := map[string]string{}
	for name, values := range req.Header {
		headers[strings.ToLower(name)] = strings.Join(values, ", ")
	}
	c.seen = map[string]any{"headers": headers, "body_base64": base64.StdEncoding.EncodeToString(body)}
	return c.next.RoundTrip(req)
}

type headersKey struct{}

func receive(args []string) error {
	fs := flag.NewFlagSet("receive", flag.ExitOnError)
	host := fs.String("host", "127.0.0.1", "address to listen on")
	port := fs.Int("port", 0, "port to listen on")
	replyType := fs.String("reply-type", "", "answer each event with a reply event of this type")
	_ = fs.Parse(args)

	listener, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		return err
	}
	// Keep the request's Content-Type next to the event, to show what the SDK interpreted.
	keepHeaders := func(next nethttp.Handler) nethttp.Handler {
		return nethttp.HandlerFunc(func(rw nethttp.ResponseWriter, req *nethttp.Request) {
			next.ServeHTTP(rw, req.WithContext(context.WithValue(req.Context(), headersKey{}, req.Header.Clone())))
		})
	}
	p, err := cehttp.New(cehttp.WithListener(listener), cehttp.WithMiddleware(keepHeaders))
	if err != nil {
		return err
	}
	c, err := client.New(p)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	handle := func(ctx context.Context, e event.Event) (*event.Event, protocol.Result) {
		contentType := ""
		if headers, ok := ctx.Value(headersKey{}).(nethttp.Header); ok {
			contentType = headers.Get("Content-Type")
		}
		printJSON(map[string]any{"event": describe(e), "content_type": contentType})
		if *replyType == "" {
			return nil, protocol.ResultACK
		}
		reply := cloudevents.NewEvent()
		reply.SetID("reply-" + e.ID())
		reply.SetType(*replyType)
		reply.SetSource("/interop/go")
		reply.SetExtension("inreplyto", e.ID())
		body, _ := json.Marshal(map[string]string{"replyTo": e.ID(), "by": "go"})
		if err := reply.SetData(cloudevents.ApplicationJSON, body); err != nil {
			return nil, err
		}
		return &reply, protocol.ResultACK
	}
	printJSON(map[string]any{"listening": listener.Addr().String()})
	if err := c.StartReceiver(ctx, handle); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
