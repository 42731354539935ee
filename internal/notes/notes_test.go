package notes

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateNew(t *testing.T) {
	cases := []struct {
		name        string
		title, body string
		wantFields  []string
	}{
		{"valid", "groceries", "milk", nil},
		{"empty body", "groceries", "", nil},
		{"empty title", "", "milk", []string{"title"}},
		{"blank title", "   ", "milk", []string{"title"}},
		{"title at limit", strings.Repeat("é", MaxTitleLength), "", nil},
		{"title over limit", strings.Repeat("x", MaxTitleLength+1), "", []string{"title"}},
		{"body over limit", "t", strings.Repeat("x", MaxBodyLength+1), []string{"body"}},
		{"NUL in title", "a\x00b", "", []string{"title"}},
		{"NUL in body", "t", "a\x00b", []string{"body"}},
		{"invalid UTF-8", "\xff", "\xfe", []string{"title", "body"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateNew(tc.title, tc.body)
			if tc.wantFields == nil {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}

			var v *ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("got %v, want a *ValidationError", err)
			}
			var got []string
			for _, f := range v.Fields {
				got = append(got, f.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantFields, ",") {
				t.Errorf("got invalid fields %v, want %v", got, tc.wantFields)
			}
		})
	}
}

func TestPatchValidate(t *testing.T) {
	title, long := "new", strings.Repeat("x", MaxTitleLength+1)

	if err := (Patch{}).Validate(); err == nil {
		t.Error("empty patch: got no error, want one")
	}
	if err := (Patch{Title: &title}).Validate(); err != nil {
		t.Errorf("title only: got %v, want no error", err)
	}
	if err := (Patch{Title: &long}).Validate(); err == nil {
		t.Error("title over limit: got no error, want one")
	}
}
