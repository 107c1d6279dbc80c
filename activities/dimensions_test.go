package activities

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Callers that arrive while a refresh runs share one later refresh, and
// each is answered by a refresh that started after it asked.
func TestRefresherCoalescesCallersIntoOneLaterRun(t *testing.T) {
	var r refresher
	var runs atomic.Int64
	var (
		mu      sync.Mutex
		started []time.Time // start time of each run
	)
	release := make(chan struct{})
	refresh := func(context.Context) error {
		mu.Lock()
		started = append(started, time.Now())
		mu.Unlock()
		if runs.Add(1) == 1 {
			<-release // the first run holds until every other caller waits
		}
		return nil
	}
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- r.do(ctx, "k", refresh) }()
	waitFor(t, func() bool { return runs.Load() == 1 })

	const callers = 10
	asked := make([]time.Time, callers)
	var wg sync.WaitGroup
	for i := range callers {
		asked[i] = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.do(ctx, "k", refresh); err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
		}()
	}
	// Every caller waits: one to start the next run, the rest joined it.
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.waiting["k"] != nil && r.waiting["k"].joined == callers-1
	})
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := runs.Load(); got != 2 {
		t.Fatalf("%d refreshes for 1 + %d callers, want 2 (the running one and one shared by the waiting callers)", got, callers)
	}
	for i, at := range asked {
		if !started[1].After(at) {
			t.Errorf("caller %d asked at %v but was answered by a refresh that started at %v", i, at, started[1])
		}
	}
}

// Different keys (gateway lists) never share a refresh.
func TestRefresherKeepsKeysApart(t *testing.T) {
	var r refresher
	var runs atomic.Int64
	refresh := func(context.Context) error { runs.Add(1); return nil }
	for _, k := range []string{"a", "b", "a"} {
		if err := r.do(context.Background(), k, refresh); err != nil {
			t.Fatal(err)
		}
	}
	if runs.Load() != 3 {
		t.Fatalf("%d refreshes for 3 sequential calls, want 3", runs.Load())
	}
}

// A caller cancelled while its run waits to start releases those that
// joined it with an error (their activities retry), never a hang.
func TestRefresherAbandonedRunReleasesItsFollowers(t *testing.T) {
	var r refresher
	release := make(chan struct{})
	refreshErr := errors.New("boom")
	go r.do(context.Background(), "k", func(context.Context) error { <-release; return refreshErr })
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.running["k"] != nil
	})

	leaderCtx, cancel := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() {
		leader <- r.do(leaderCtx, "k", func(context.Context) error { t.Error("an abandoned run started"); return nil })
	}()
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.waiting["k"] != nil
	})
	follower := make(chan error, 1)
	go func() { follower <- r.do(context.Background(), "k", nil) }()
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.waiting["k"] != nil && r.waiting["k"].joined == 1
	})
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled leader: %v, want context.Canceled", err)
	}
	if err := <-follower; !errors.Is(err, errRefreshAbandoned) {
		t.Fatalf("follower of an abandoned run: %v, want errRefreshAbandoned", err)
	}
	close(release)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
