package gateway

import (
	"errors"
	"time"
)

// This file is how the gateway's server (server.go) notices a client
// that goes away while its request is in flight, which net/http's server
// does with a read started for every request.

// watchLoop finds requests in flight since its previous look whose body
// is read, and starts a read on their connection: a client that goes away
// then cancels its request's context, as net/http's background read does.
// Short requests, nearly all of them, never get a watcher: net/http's
// server pays a goroutine, a read and a deadline move per request for it.
func (s *Server) watchLoop() {
	t := time.NewTicker(s.cfg.watchAfter)
	defer t.Stop()
	s.tick(time.Now())
	s.ticking.Store(true)
	defer s.ticking.Store(false)
	for {
		var now time.Time
		select {
		case <-s.done:
			return
		case now = <-t.C:
		}
		s.tick(now)
		s.mu.Lock()
		for c := range s.conns {
			seq := c.seq.Load()
			if c.seenSeq == seq && c.state.Load() == stReady {
				c.startWatch()
			}
			c.seenSeq = seq
		}
		s.mu.Unlock()
	}
}

// startWatch starts the watcher's read (the watcher loop calls it, with
// the server's lock held).
func (c *srvConn) startWatch() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if !c.state.CompareAndSwap(stReady, stWatching) {
		return
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	go c.watch()
}

// watch reads one byte: the end of the connection (the client went away:
// the request's context is cancelled) or the next request's first byte
// (kept for it).
func (c *srvConn) watch() {
	n, err := c.nc.Read(c.watchBuf[:])
	if n > 0 {
		c.watchGot = true
	} else if err != nil && !errors.Is(err, errDeadline) {
		c.gone.Store(true)
		c.cancelWith(errClientGone)
	}
	c.watchDone <- struct{}{}
}

// errClientGone cancels the context of a request whose client closed its
// connection.
var errClientGone = errors.New("the client closed its connection")

// stopWatch ends a watcher, if one was started, and keeps the byte it
// read. The connection's goroutine calls it before it reads again.
func (c *srvConn) stopWatch() {
	if c.state.CompareAndSwap(stReady, stHead) || c.state.CompareAndSwap(stBody, stHead) {
		return
	}
	if c.state.Load() != stWatching {
		return
	}
	c.watchMu.Lock()
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	c.watchMu.Unlock()
	<-c.watchDone
	c.deadlineMoved = true
	if c.watchGot {
		c.watchGot = false
		c.rd.push(c.watchBuf[0])
	}
	c.state.Store(stHead)
}
