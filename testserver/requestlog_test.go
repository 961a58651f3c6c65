package testserver

import "testing"

func TestRequestLogKeepsTheNewestRecordsOldestFirst(t *testing.T) {
	s := New(Config{})
	const extra = 5
	for i := range MaxRequestLog + extra {
		s.reqLog.add(RequestRecord{Status: i})
	}
	got := s.Requests()
	if len(got) != MaxRequestLog {
		t.Fatalf("got %d records, want %d", len(got), MaxRequestLog)
	}
	for i, r := range got {
		if want := i + extra; r.Status != want {
			t.Fatalf("record %d: got %d, want %d", i, r.Status, want)
		}
	}
}
