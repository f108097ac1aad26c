// benthos-peer: a Go yardstick for Ripple's benchmarks, doing Ripple's job with Benthos core and nats.go.
//
//	benthos-peer ingest   http_server input -> JetStream output (the 2xx only after the PubAck)
//	benthos-peer deliver  JetStream input (durable pull consumer) -> http_client output (ack after a 2xx)
//	benthos-peer all      both, in one process
//	benthos-peer stream   create the stream (if missing) and exit
//
// Every flag has an environment variable (PEER_<FLAG>, upper case, '-' as '_'), the flag winning.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"   // http_server, http_client
	_ "github.com/redpanda-data/benthos/v4/public/components/pure" // core processors, sync_response, ...
)

type options struct {
	natsURL      string
	stream       string
	subject      string
	ensureStream bool
	listen       string
	path         string
	status       string
	dedup        bool
	receiverURL  string
	concurrency  int
	transport    string
	durable      string
	deliver      string
	ackWait      time.Duration
	pullBatch    int
	httpTimeout  time.Duration
	retries      int
	logLevel     string
	printConfig  bool
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("PEER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(env(name, strconv.Itoa(def))); err == nil {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, err := strconv.ParseBool(env(name, strconv.FormatBool(def))); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(env(name, def.String())); err == nil {
		return v
	}
	return def
}

func parse(mode string, args []string) options {
	var o options
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	fs.StringVar(&o.natsURL, "nats-url", env("nats-url", "nats://127.0.0.1:4222"), "NATS server URL(s), comma-separated")
	fs.StringVar(&o.stream, "stream", env("stream", "PEER"), "JetStream stream name")
	fs.StringVar(&o.subject, "subject", env("subject", "peer.events"), "subject events are published to and read from")
	fs.BoolVar(&o.ensureStream, "ensure-stream", envBool("ensure-stream", true), "create the stream (file storage, the subject) if it is missing")
	fs.StringVar(&o.listen, "listen", env("listen", "127.0.0.1:8080"), "ingest: HTTP listen address")
	fs.StringVar(&o.path, "path", env("path", "/{namespace}/{broker}"), "ingest: HTTP path (gorilla/mux pattern)")
	fs.StringVar(&o.status, "status", env("status", "202"), "ingest: status answered once stored")
	fs.BoolVar(&o.dedup, "dedup", envBool("dedup", true), "ingest: Nats-Msg-Id from ce-source and ce-id")
	fs.StringVar(&o.receiverURL, "receiver-url", env("receiver-url", "http://127.0.0.1:8081/"), "deliver: URL events are POSTed to")
	fs.IntVar(&o.concurrency, "concurrency", envInt("concurrency", 64), "max_in_flight of the output (ingest: concurrent publishes; deliver: concurrent POSTs)")
	fs.StringVar(&o.transport, "transport", env("transport", "stock"), "deliver: stock (Go's default transport, 2 idle conns per host) or tuned (MaxIdleConnsPerHost = concurrency)")
	fs.StringVar(&o.durable, "durable", env("durable", "benthos-peer"), "deliver: durable consumer name")
	fs.StringVar(&o.deliver, "deliver", env("deliver", "all"), "deliver: consumer deliver policy, all or new")
	fs.DurationVar(&o.ackWait, "ack-wait", envDuration("ack-wait", 30*time.Second), "deliver: consumer AckWait")
	fs.IntVar(&o.pullBatch, "pull-batch", envInt("pull-batch", 256), "deliver: messages buffered from pull requests")
	fs.DurationVar(&o.httpTimeout, "http-timeout", envDuration("http-timeout", 5*time.Second), "deliver: http_client timeout")
	fs.IntVar(&o.retries, "retries", envInt("retries", 3), "deliver: http_client retries before the message is nak'ed")
	fs.StringVar(&o.logLevel, "log-level", env("log-level", "WARN"), "Benthos log level")
	fs.BoolVar(&o.printConfig, "print-config", false, "print the Benthos config(s) and exit")
	_ = fs.Parse(args)
	if o.transport != "stock" && o.transport != "tuned" {
		fmt.Fprintf(os.Stderr, "benthos-peer: -transport: want stock or tuned, got %q\n", o.transport)
		os.Exit(2)
	}
	return o
}

func (o options) urls() []string { return strings.Split(o.natsURL, ",") }

func (o options) common() map[string]any {
	return map[string]any{
		"logger":  map[string]any{"level": o.logLevel, "format": "logfmt"},
		"metrics": map[string]any{"none": map[string]any{}},
	}
}

// ingestConfig: http_server -> peer_jetstream. The http_server handler waits for the transaction's ack,
// which Benthos gives when the output's Write returned, i.e. after the PubAck.
func (o options) ingestConfig() map[string]any {
	c := o.common()
	c["input"] = map[string]any{"http_server": map[string]any{
		"address":       o.listen,
		"path":          o.path,
		"allowed_verbs": []string{"POST"},
		"sync_response": map[string]any{"status": o.status},
	}}
	c["output"] = map[string]any{pluginName: map[string]any{
		"urls":          o.urls(),
		"subject":       o.subject,
		"dedup":         o.dedup,
		"sync_response": true,
		"max_in_flight": o.concurrency,
	}}
	return c
}

// deliverConfig: peer_jetstream -> http_client. The input acks a message when Benthos calls its AckFunc
// without error, i.e. after http_client got a 2xx.
func (o options) deliverConfig() map[string]any {
	c := o.common()
	c["input"] = map[string]any{pluginName: map[string]any{
		"urls":            o.urls(),
		"stream":          o.stream,
		"durable":         o.durable,
		"subject":         o.subject,
		"deliver":         o.deliver,
		"ack_wait":        o.ackWait.String(),
		"max_ack_pending": max(1000, 4*o.concurrency), // as Ripple's trigger consumers
		"pull_batch":      o.pullBatch,
	}}
	c["output"] = map[string]any{"http_client": map[string]any{
		"url":           o.receiverURL,
		"verb":          "POST",
		"timeout":       o.httpTimeout.String(),
		"retries":       o.retries,
		"max_in_flight": o.concurrency,
		"metadata":      map[string]any{"include_patterns": []string{defaultHeaderPattern}},
	}}
	return c
}

// tuneTransport raises the idle-connection pool of http.DefaultTransport. Benthos v4.60.0's http_client has no
// transport field: it builds an http.Client with a nil Transport (unless tls or proxy_url is set, which clone
// http.DefaultTransport), so every request goes through http.DefaultTransport, whose MaxIdleConnsPerHost is
// Go's default of 2: past 2 concurrent requests to the receiver, connections are closed after use and redialed.
// Setting it before the stream is built tunes exactly the stock http_client path and nothing else.
func tuneTransport(concurrency int) {
	t := http.DefaultTransport.(*http.Transport)
	t.MaxIdleConnsPerHost = concurrency
	if t.MaxIdleConns != 0 && t.MaxIdleConns < concurrency {
		t.MaxIdleConns = concurrency
	}
}

func ensureStream(o options) error {
	nc, err := nats.Connect(o.natsURL, nats.Name("benthos-peer setup"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       o.stream,
		Subjects:   []string{o.subject},
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil
	}
	return err
}

func build(conf map[string]any) (*service.Stream, error) {
	doc, err := json.Marshal(conf) // JSON is YAML
	if err != nil {
		return nil, err
	}
	b := service.NewStreamBuilder()
	if err := b.SetYAML(string(doc)); err != nil {
		return nil, err
	}
	return b.Build()
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benthos-peer ingest|deliver|all|stream [flags]   (benthos-peer MODE -h for the flags)")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	mode := os.Args[1]
	o := parse(mode, os.Args[2:])

	var confs []map[string]any
	switch mode {
	case "ingest":
		confs = append(confs, o.ingestConfig())
	case "deliver":
		confs = append(confs, o.deliverConfig())
	case "all":
		confs = append(confs, o.ingestConfig(), o.deliverConfig())
	case "stream":
		if err := ensureStream(o); err != nil {
			fmt.Fprintf(os.Stderr, "benthos-peer: stream %s: %v\n", o.stream, err)
			os.Exit(1)
		}
		return
	default:
		usage()
	}
	if o.printConfig {
		for _, c := range confs {
			doc, _ := json.MarshalIndent(c, "", "  ")
			fmt.Println(string(doc))
		}
		return
	}
	if o.ensureStream {
		if err := ensureStream(o); err != nil {
			fmt.Fprintf(os.Stderr, "benthos-peer: stream %s: %v\n", o.stream, err)
			os.Exit(1)
		}
	}
	if mode != "ingest" && o.transport == "tuned" {
		tuneTransport(o.concurrency)
	}

	streams := make([]*service.Stream, 0, len(confs))
	for _, c := range confs {
		s, err := build(c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benthos-peer: config: %v\n", err)
			os.Exit(1)
		}
		streams = append(streams, s)
	}
	fmt.Fprintf(os.Stderr, "benthos-peer %s: nats=%s stream=%s subject=%s listen=%s receiver=%s concurrency=%d transport=%s\n",
		mode, o.natsURL, o.stream, o.subject, o.listen, o.receiverURL, o.concurrency, o.transport)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Run(context.Background())
		}()
	}
	select {
	case <-ctx.Done():
	case err := <-errs: // a stream ended by itself
		fmt.Fprintf(os.Stderr, "benthos-peer: a stream stopped: %v\n", err)
	}
	for _, s := range streams {
		_ = s.StopWithin(10 * time.Second)
	}
	wg.Wait()
}
