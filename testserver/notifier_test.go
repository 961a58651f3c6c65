package testserver

import "testing"

func TestNotifierWakesEveryWaiterOfTheNextChangeOnly(t *testing.T) {
	var n notifier
	a, b := n.wait(), n.wait()
	select {
	case <-a:
		t.Fatal("woken before notify")
	default:
	}
	n.notify()
	<-a
	<-b
	next := n.wait()
	select {
	case <-next:
		t.Fatal("a wait after notify is woken by the earlier notify")
	default:
	}
	n.notify()
	<-next
}
