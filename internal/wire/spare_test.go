package wire

import "testing"

func TestSpare(t *testing.T) {
	var s Spare
	if b := s.Take(MinReuse); b != nil {
		t.Fatal("an empty Spare gave a buffer")
	}
	s.Give(make([]byte, MinReuse-1))
	s.Give(make([]byte, MaxReuse+1))
	if b := s.Take(MinReuse - 1); b != nil {
		t.Fatal("Take below MinReuse gave a buffer")
	}
	if b := s.Take(1); b != nil {
		t.Fatal("kept a buffer outside [MinReuse, MaxReuse]")
	}
	s.Give(make([]byte, 1<<20))
	s.Give(make([]byte, 100<<10)) // smaller: the larger one stays
	if b := s.Take(2 << 20); b != nil {
		t.Fatal("Take gave a buffer too small for n")
	}
	b := s.Take(1 << 20)
	if cap(b) != 1<<20 {
		t.Fatalf("Take gave cap %d, want the 1 MiB buffer", cap(b))
	}
	if s.Take(MinReuse) != nil {
		t.Fatal("a taken buffer was handed out twice")
	}
}
