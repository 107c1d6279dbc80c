package main

import (
	"reflect"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ktpipe/ktpipe/payload"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func iv(from, to float64) interval { return interval{at(from), at(to)} }

// TestCovered: the time activities ran is the union of their intervals,
// so time two of them ran at once counts once, not twice.
func TestCovered(t *testing.T) {
	for _, c := range []struct {
		name  string
		spans []interval
		want  float64 // seconds of [0, 10) covered
	}{
		{"none", nil, 0},
		{"gaps between", []interval{iv(0, 2), iv(5, 6)}, 3},
		{"overlapping", []interval{iv(0, 4), iv(2, 6)}, 6},
		{"nested", []interval{iv(0, 9), iv(2, 3), iv(4, 8)}, 9},
		{"touching", []interval{iv(0, 2), iv(2, 4)}, 4},
		{"unordered", []interval{iv(7, 8), iv(1, 3), iv(2, 4)}, 4},
		// A retried activity: an attempt the workflow started again over
		// one still running (a restage inside a merge), beside another.
		{"retried over itself and another", []interval{iv(1, 3), iv(2, 5), iv(4, 6)}, 5},
		{"clipped to the workflow", []interval{iv(-2, 1), iv(9, 12)}, 2},
		{"empty and reversed", []interval{iv(3, 3), iv(5, 4)}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := covered(at(0), at(10), c.spans).Seconds()
			if got != c.want {
				t.Errorf("covered = %vs, want %vs", got, c.want)
			}
		})
	}
}

// TestMeasureTimeline: idle is the workflow's wall time outside every
// activity; the timers' share of it, stage and commit are unions too.
func TestMeasureTimeline(t *testing.T) {
	tl := timeline{
		start: at(0), end: at(20),
		activities: map[string][]interval{
			"DownloadExport":   {iv(1, 3)},
			payload.StageChunk: {iv(5, 9), iv(6, 10), iv(7, 8)}, // 4 at a time: 5 s, not 10
			payload.MergeLoad:  {iv(11, 15)},
			"CheckLoad":        {iv(14, 16)},
		},
		timers:   []interval{iv(0.5, 2), iv(3, 4.5)}, // the first overlaps an activity
		queued:   []interval{iv(4, 5), iv(10, 11.5)}, // idle outside activities and timers: [4.5,5) [10,11)
		attempts: []int32{1, 1, 3, 1, 1, 1},
	}
	r := measureTimeline(tl)
	// Busy: [1,3) [5,10) [11,16) = 12 s of 20.
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"wall", r.Wall, 20 * time.Second},
		{"idle", r.Idle, 8 * time.Second},
		{"timer idle", r.TimerIdle, 2 * time.Second}, // [0.5,1) and [3,4.5)
		{"queue idle", r.QueueIdle, 1500 * time.Millisecond},
		{"stage", r.Stage, 5 * time.Second},
		{"commit", r.Commit, 4 * time.Second},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if r.Activities != 6 || r.Retried != 1 {
		t.Errorf("activities %d, retried %d; want 6, 1", r.Activities, r.Retried)
	}
}

// TestReadTimeline reads activity and timer intervals out of a
// continue-as-new chain of two runs, whose event ids start again at 1.
func TestReadTimeline(t *testing.T) {
	ev := func(id int64, s float64, typ enumspb.EventType, attrs func(*historypb.HistoryEvent)) *historypb.HistoryEvent {
		e := &historypb.HistoryEvent{EventId: id, EventTime: timestamppb.New(at(s)), EventType: typ}
		if attrs != nil {
			attrs(e)
		}
		return e
	}
	scheduled := func(name string) func(*historypb.HistoryEvent) {
		return func(e *historypb.HistoryEvent) {
			e.Attributes = &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
				ActivityType: &commonpb.ActivityType{Name: name}}}
		}
	}
	started := func(attempt int32) func(*historypb.HistoryEvent) {
		return func(e *historypb.HistoryEvent) {
			e.Attributes = &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{
				ScheduledEventId: 5, Attempt: attempt}}
		}
	}
	events := []*historypb.HistoryEvent{
		ev(1, 0, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, nil),
		ev(5, 0.5, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, scheduled(payload.StageChunk)),
		ev(6, 1, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, started(2)),
		ev(7, 3, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, func(e *historypb.HistoryEvent) {
			e.Attributes = &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{
				ScheduledEventId: 5, StartedEventId: 6}}
		}),
		ev(8, 3, enumspb.EVENT_TYPE_TIMER_STARTED, nil),
		ev(81, 3.5, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, nil),
		ev(9, 5, enumspb.EVENT_TYPE_TIMER_FIRED, func(e *historypb.HistoryEvent) {
			e.Attributes = &historypb.HistoryEvent_TimerFiredEventAttributes{TimerFiredEventAttributes: &historypb.TimerFiredEventAttributes{StartedEventId: 8}}
		}),
		ev(10, 5, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW, nil),
		// The next run.
		ev(1, 6, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, nil),
		ev(5, 6.5, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, scheduled(payload.MergeLoad)),
		ev(6, 7, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, started(1)),
		ev(7, 8, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED, func(e *historypb.HistoryEvent) {
			e.Attributes = &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{
				ScheduledEventId: 5, StartedEventId: 6}}
		}),
		ev(71, 8.5, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, nil),
		ev(8, 9, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, nil),
	}
	tl := readTimeline(events)
	want := timeline{start: at(0), end: at(9),
		activities: map[string][]interval{payload.StageChunk: {iv(1, 3)}, payload.MergeLoad: {iv(7, 8)}},
		timers:     []interval{iv(3, 5)}, attempts: []int32{2, 1}, signals: 2,
		queued: []interval{iv(6.5, 7)}} // the first run's activity waited for its retries, not a slot
	if !reflect.DeepEqual(tl, want) {
		t.Errorf("timeline\n got %+v\nwant %+v", tl, want)
	}
}

// TestMiddle: the median of an even count is the mean of the middle two
// (two runs must not print the slower one as their median).
func TestMiddle(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1}, 2.5}, {[]float64{5}, 5}} {
		if got := middle(c.xs); got != c.want {
			t.Errorf("middle(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
}
