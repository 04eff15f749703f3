// Package etcd starts the embedded etcd or connects to an external cluster, and compacts history
// periodically as kube-apiserver does.
package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Backend is a running etcd connection and, when embedded, the server behind it.
type Backend struct {
	Client *clientv3.Client
	// ClientURL is where other processes reach an embedded etcd (loopback only).
	ClientURL string
	embedded  *embed.Etcd
}

// Close stops the client and the embedded server, if any.
func (b *Backend) Close() error {
	err := b.Client.Close()
	if b.embedded != nil {
		b.embedded.Close()
	}
	return err
}

// StartEmbedded runs etcd in this process with its data under dir. Clients reach it in-process;
// its listeners are on free loopback ports, so nothing is exposed beyond this machine.
func StartEmbedded(ctx context.Context, dir string) (*Backend, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "keelson"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	peer, client, err := loopbackURLs(dir)
	if err != nil {
		return nil, err
	}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// kube-apiserver compacts itself; etcd's own compactor stays off.
	cfg.AutoCompactionRetention = "0"
	cfg.QuotaBackendBytes = 8 << 30
	// A fresh node elects itself at once instead of waiting for an election timeout.
	cfg.InitialElectionTickAdvance = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: start embedded: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd: embedded: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd: embedded server not ready after 60s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Backend{Client: v3client.New(e.Server), ClientURL: client.String(), embedded: e}, nil
}

// loopbackURLs returns the member's peer and client URLs: the ones it had when dir holds a member
// already (etcd keeps its peer URL in its data and will not start on another), else free ports.
func loopbackURLs(dir string) (peer, client url.URL, err error) {
	record := filepath.Join(dir, "keelson-urls")
	if b, err := os.ReadFile(record); err == nil {
		var p, c string
		if _, err := fmt.Sscanf(string(b), "%s %s", &p, &c); err == nil {
			pu, perr := url.Parse(p)
			cu, cerr := url.Parse(c)
			if perr == nil && cerr == nil {
				return *pu, *cu, nil
			}
		}
	}
	if peer, err = freeLoopbackURL(); err != nil {
		return peer, client, err
	}
	if client, err = freeLoopbackURL(); err != nil {
		return peer, client, err
	}
	return peer, client, os.WriteFile(record, []byte(peer.String()+" "+client.String()+"\n"), 0o600)
}

func freeLoopbackURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, fmt.Errorf("etcd: finding a free port: %w", err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

// Connect dials an external etcd cluster.
func Connect(ctx context.Context, endpoints []string) (*Backend, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd: connect %v: %w", endpoints, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Get(sctx, "/registry/health-check", clientv3.WithCountOnly()); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd: reach %v: %w", endpoints, err)
	}
	return &Backend{Client: c}, nil
}

// RunCompactor compacts etcd history every interval down to the revision seen one interval earlier,
// so a watcher or paginated list has at least one interval to catch up, as kube-apiserver does.
// It blocks until ctx is done.
func RunCompactor(ctx context.Context, c *clientv3.Client, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var previous int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := c.Get(ctx, "compact_rev_key", clientv3.WithCountOnly())
		if err != nil {
			log.Warn("etcd compaction: reading revision", "err", err)
			continue
		}
		if previous > 0 {
			if _, err := c.Compact(ctx, previous); err != nil {
				log.Debug("etcd compaction", "revision", previous, "err", err)
			}
		}
		previous = resp.Header.Revision
	}
}
