package l7

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func selectionRequest(body []byte) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "https://pop.invalid"+PathSelection, bytes.NewReader(body))
	return r
}

func TestReadSelection(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       Selection
		watch      []string
		bad        bool
	}{
		{"apps and watch", `{"apps":{"web":["p1","p2"]},"watch":["p3"]}`, Selection{"web": {"p1", "p2"}}, []string{"p3"}, false},
		{"empty", `{}`, Selection{}, nil, false},
		{"unknown key", `{"apps":{},"extra":1}`, nil, nil, true},
		{"not JSON", `apps`, nil, nil, true},
		{"too large", `{"apps":{"a":["` + string(bytes.Repeat([]byte("x"), maxSelectionBody)) + `"]}}`, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, watch, err := ReadSelection(selectionRequest([]byte(tc.body)))
			if tc.bad {
				if err == nil {
					t.Fatalf("ReadSelection(%.40q) = %v, want an error", tc.body, sel)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(sel, tc.want) || !reflect.DeepEqual(watch, tc.watch) {
				t.Fatalf("ReadSelection = %v %v %v, want %v %v", sel, watch, err, tc.want, tc.watch)
			}
		})
	}
}

// FuzzReadSelection: any body is read or refused, never a panic, and what is
// read survives a round trip through the wire format.
func FuzzReadSelection(f *testing.F) {
	f.Add([]byte(`{"apps":{"web":["p1","p2"]},"watch":["p3"]}`))
	f.Add([]byte(`{"apps":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sel, watch, err := ReadSelection(selectionRequest(body))
		if err != nil {
			return
		}
		b, err := json.Marshal(selectionWire{Apps: sel, Watch: watch})
		if err != nil {
			t.Fatal(err)
		}
		sel2, watch2, err := ReadSelection(selectionRequest(b))
		if err != nil || !reflect.DeepEqual(sel, sel2) || len(watch) != len(watch2) {
			t.Fatalf("round trip: %v %v %v, want %v %v", sel2, watch2, err, sel, watch)
		}
	})
}
