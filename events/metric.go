package events

import (
	"encoding/json"
	"fmt"
	"math"
)

// Metric is a float64 whose JSON form also carries NaN and ±Inf (as the strings
// "NaN", "+Inf", "-Inf"): a diverging loss must reach the tracker as what it is,
// not fail the publish.
type Metric float64

// MarshalJSON writes finite values as JSON numbers and the rest as strings.
func (m Metric) MarshalJSON() ([]byte, error) {
	f := float64(m)
	switch {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(f)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Metric) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		switch s {
		case "NaN":
			*m = Metric(math.NaN())
		case "+Inf", "Inf":
			*m = Metric(math.Inf(1))
		case "-Inf":
			*m = Metric(math.Inf(-1))
		default:
			return fmt.Errorf("metric %q is neither a number nor NaN/+Inf/-Inf", s)
		}
		return nil
	}
	var f float64
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("metric %s is not a number", data)
	}
	*m = Metric(f)
	return nil
}
