package testserver

import (
	"sync"
	"testing"
	"time"
)

func TestFrozenClockMovesOnlyWithAdvance(t *testing.T) {
	c := NewClock(epoch)
	if got := c.Now(); !got.Equal(epoch) {
		t.Fatalf("got %v, want %v", got, epoch)
	}
	c.Advance(90 * time.Second)
	if got, want := c.Now(), epoch.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("after Advance: got %v, want %v", got, want)
	}
}

func TestZeroClockFollowsRealTimePlusAdvance(t *testing.T) {
	var c Clock
	c.Advance(time.Hour)
	before := time.Now().Add(time.Hour)
	got := c.Now()
	after := time.Now().Add(time.Hour)
	if got.Before(before) || got.After(after) {
		t.Errorf("got %v, want between %v and %v", got, before, after)
	}
}

func TestClockConcurrentUse(t *testing.T) {
	c := NewClock(epoch)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), epoch.Add(800*time.Second); !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
