package datasets

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

func fixture(t *testing.T, parts ...string) string {
	return testfixtures.Path(t, append([]string{"datasets"}, parts...)...)
}

// rowsJSON renders rows as canonical JSON lines, the form expectations use.
func rowsJSON(rows []Record) string {
	var b []byte
	for i, r := range rows {
		if i > 0 {
			b = append(b, '\n')
		}
		b = AppendJSON(b, r.Fields)
	}
	return string(b)
}

func sources(rows []Record) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Source.String())
	}
	return out
}

func mustRead(t *testing.T, path, format string, require ...Requirement) ([]Record, Report) {
	t.Helper()
	rows, rep, err := ReadFile(path, format, require)
	if err != nil {
		t.Fatalf("ReadFile(%s): %v", path, err)
	}
	return rows, rep
}

const alpacaRowsJSON = `{"instruction":"Name a primary colour.","input":"","output":"Red."}
{"instruction":"Translate to French","input":"good morning","output":"bonjour"}
{"instruction":"Écris «bonjour» 👋","input":"tab\tand \"quotes\"","output":"ok\nnew line"}`

func TestReadJSONLines(t *testing.T) {
	path := fixture(t, "alpaca.jsonl")
	rows, rep := mustRead(t, path, "")
	if got := rowsJSON(rows); got != alpacaRowsJSON {
		t.Fatalf("rows:\n%s\nwant:\n%s", got, alpacaRowsJSON)
	}
	if got := strings.Join(sources(rows), " "); got != path+":1 "+path+":2 "+path+":3" {
		t.Errorf("sources = %s", got)
	}
	if rep.Rows != 3 || rep.Rejected != 0 {
		t.Errorf("report = %+v", rep)
	}
	wantCols := []string{"instruction", "input", "output"}
	for i, c := range rep.Columns {
		if c.Name != wantCols[i] || len(c.Kinds) != 1 || c.Kinds[0] != "string" {
			t.Errorf("column %d = %+v", i, c)
		}
	}
	gz, _ := mustRead(t, fixture(t, "alpaca.jsonl.gz"), "")
	if got := rowsJSON(gz); got != alpacaRowsJSON {
		t.Errorf("gzip rows:\n%s", got)
	}
}

func TestReadJSONArray(t *testing.T) {
	path := fixture(t, "alpaca.json")
	rows, _ := mustRead(t, path, "")
	if got := rowsJSON(rows); got != alpacaRowsJSON {
		t.Fatalf("rows:\n%s", got)
	}
	// Each row is reported at the line its object starts on.
	if got := strings.Join(sources(rows), " "); got != path+":2 "+path+":3 "+path+":8" {
		t.Errorf("sources = %s", got)
	}
	strs, _ := mustRead(t, fixture(t, "strings.json"), "")
	if got, want := rowsJSON(strs), `{"text":"first document"}
{"text":"second\ndocument"}
{"text":""}`; got != want {
		t.Errorf("strings rows:\n%s", got)
	}
}

func TestReadJSONObjectByColumns(t *testing.T) {
	rows, _ := mustRead(t, fixture(t, "columns.json"), "")
	want := `{"text":"a","score":1}
{"text":"b","score":2.5}
{"text":"c","score":null}`
	if got := rowsJSON(rows); got != want {
		t.Fatalf("rows:\n%s\nwant:\n%s", got, want)
	}
}

func TestReadJSONField(t *testing.T) {
	ds, err := Load(context.Background(), Spec{Path: fixture(t, "field.json"), Field: "data"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rowsJSON(ds.Rows), `{"id":1,"text":"alpha"}
{"id":2,"text":"beta"}`; got != want {
		t.Fatalf("rows:\n%s", got)
	}
	_, err = Load(context.Background(), Spec{Path: fixture(t, "field.json"), Field: "rows"}, Options{})
	if err == nil || !strings.Contains(err.Error(), `field "rows": no such member`) {
		t.Fatalf("missing field error = %v", err)
	}
}

func TestBadRowsAreCountedWithFileAndLine(t *testing.T) {
	path := fixture(t, "bad.jsonl")
	require := []Requirement{{Field: "instruction", Kinds: []string{"string"}}, {Field: "output", Kinds: []string{"string"}}}
	rows, rep := mustRead(t, path, "", require...)
	if got, want := rowsJSON(rows), `{"instruction":"ok 1","output":"a"}
{"instruction":"ok 4","output":"d"}`; got != want {
		t.Fatalf("accepted rows:\n%s", got)
	}
	if rep.Rows != 2 || rep.Rejected != 5 {
		t.Fatalf("rows %d rejected %d, want 2 and 5", rep.Rows, rep.Rejected)
	}
	want := []string{
		path + ":2: malformed JSON at column 38: unexpected end of input in object",
		path + `:4: missing field "instruction"`,
		path + `:5: field "instruction" is list, want string`,
		path + ":6: line holds a JSON list, want an object",
		path + `:7: missing field "output"`,
	}
	for i, p := range rep.Problems {
		if p.String() != want[i] {
			t.Errorf("problem %d = %q\nwant          %q", i, p.String(), want[i])
		}
	}
	if rep.Reasons[ProblemMalformed] != 1 || rep.Reasons[ProblemMissing] != 2 || rep.Reasons[ProblemWrongType] != 1 || rep.Reasons[ProblemNotObject] != 1 {
		t.Errorf("reasons = %v", rep.Reasons)
	}

	// The default policy fails: 5 of 7 rows are bad.
	_, err := Load(context.Background(), Spec{Path: path}, Options{Require: require})
	if !errors.Is(err, ErrTooManyBadRows) || !strings.Contains(err.Error(), path+":2: malformed JSON") || !strings.Contains(err.Error(), "fix or remove") {
		t.Fatalf("Load error = %v", err)
	}
	// Skipping keeps the good rows and still reports the bad ones.
	ds, err := Load(context.Background(), Spec{Path: path}, Options{Require: require, SkipBadRows: true})
	if err != nil || len(ds.Rows) != 2 || ds.Report.Rejected != 5 {
		t.Fatalf("skip: %v %+v", err, ds)
	}
	// A generous limit lets the same file through.
	if _, err := Load(context.Background(), Spec{Path: path}, Options{Require: require, MaxBadFraction: 0.8}); err != nil {
		t.Fatalf("MaxBadFraction 0.8: %v", err)
	}
}

func TestOneBadRowInAHundredPasses(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 199; i++ {
		b.WriteString(`{"text": "row"}` + "\n")
	}
	b.WriteString(`{"text": ` + "\n")
	path := writeFile(t, dir, "mostly-good.jsonl", b.String())
	ds, err := Load(context.Background(), Spec{Path: path}, Options{})
	if err != nil {
		t.Fatalf("0.5%% bad rows should pass by default: %v", err)
	}
	if len(ds.Rows) != 199 || ds.Report.Rejected != 1 || ds.Report.Problems[0].Source.Line != 200 {
		t.Fatalf("report = %+v", ds.Report)
	}
}

func TestChatRowsKeepKeyOrder(t *testing.T) {
	rows, _ := mustRead(t, fixture(t, "chat.jsonl"), "")
	want := `{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]}
{"messages":[{"role":"user","content":"2+2?"},{"role":"assistant","content":"4","weight":0}],"id":7}`
	if got := rowsJSON(rows); got != want {
		t.Fatalf("rows:\n%s", got)
	}
	msgs, _ := rows[1].Get("messages")
	weight, _ := msgs.([]any)[1].(Object).Get("weight")
	if weight != int64(0) {
		t.Errorf("weight = %#v, want int64 0", weight)
	}
}

func TestReadCSV(t *testing.T) {
	path := fixture(t, "table.csv")
	rows, rep := mustRead(t, path, "")
	want := `{"text":"hello, world","label":1,"score":0.5,"flag":true,"note":null}
{"text":"multi\nline \"quoted\"","label":2,"score":1.25,"flag":false,"note":"x"}
{"text":"plain","label":3,"score":null,"flag":true,"note":null}`
	if got := rowsJSON(rows); got != want {
		t.Fatalf("rows:\n%s\nwant:\n%s", got, want)
	}
	if got := strings.Join(sources(rows), " "); got != path+":2 "+path+":3 "+path+":5" {
		t.Errorf("sources = %s", got)
	}
	if rep.Rejected != 0 {
		t.Errorf("rejected = %d", rep.Rejected)
	}
}

func TestReadCSVRules(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "rules.csv", "a,a,n\n1,x,1\n2,y\n3,z,7,extra\n4,w,\n")
	rows, rep := mustRead(t, path, "")
	// Repeated names get pandas' suffix; a short line is padded with null; an
	// int column with a missing cell turns float, as pandas makes it.
	want := `{"a":1,"a.1":"x","n":1.0}
{"a":2,"a.1":"y","n":null}
{"a":4,"a.1":"w","n":null}`
	if got := rowsJSON(rows); got != want {
		t.Fatalf("rows:\n%s\nwant:\n%s", got, want)
	}
	if rep.Rejected != 1 || rep.Problems[0].String() != path+":4: expected 3 fields (the header's), saw 4" {
		t.Fatalf("problems = %v", rep.Problems)
	}
}

func TestReadText(t *testing.T) {
	path := fixture(t, "corpus.txt")
	rows, _ := mustRead(t, path, "")
	want := `{"text":"first line"}
{"text":"second line"}
{"text":""}
{"text":"fourth after a blank"}
{"text":"fifth after a lone CR"}
{"text":"last without newline"}`
	if got := rowsJSON(rows); got != want {
		t.Fatalf("rows:\n%s\nwant:\n%s", got, want)
	}
}

func TestReadParquet(t *testing.T) {
	rows, rep := mustRead(t, fixture(t, "chat.parquet"), "")
	if got := rowsJSON(rows); got != fixtureChatJSON {
		t.Fatalf("rows:\n%s\nwant:\n%s", got, fixtureChatJSON)
	}
	if rows[1].Source.String() != fixture(t, "chat.parquet")+" row 1" {
		t.Errorf("source = %s", rows[1].Source)
	}
	if len(rep.Columns) != 3 || rep.Columns[0].Name != "messages" || rep.Columns[2].Name != "score" {
		t.Errorf("columns = %+v", rep.Columns)
	}
}

func TestReadArrow(t *testing.T) {
	for _, name := range []string{"rows.arrow", "rows-file-format.arrow"} {
		rows, _ := mustRead(t, fixture(t, name), "")
		if got := rowsJSON(rows); got != fixtureArrowJSON {
			t.Errorf("%s rows:\n%s\nwant:\n%s", name, got, fixtureArrowJSON)
		}
	}
}

func TestCorruptBinaryFilesAreErrors(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"junk.parquet", "junk.arrow"} {
		path := writeFile(t, dir, name, "PAR1 this is not really a columnar file PAR1")
		if _, _, err := ReadFile(path, "", nil); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error = %v", name, err)
		}
	}
}

// TestJSONLinesInBatchesKeepFileOrder: a JSON lines file of several
// parsing batches, with blank, malformed and non-object lines scattered
// through it (and no newline at the end), gives each row and each bad row
// the line and row index reading it line by line gives.
func TestJSONLinesInBatchesKeepFileOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3)) // uneven parts whatever the machine
	var b strings.Builder
	type want struct {
		line, row int
		bad       string // problem class, "" for a row
	}
	var wants []want
	line, row := 0, 0
	for i := range 3*linesPerBatch + 17 {
		line++
		switch {
		case i%97 == 5:
			b.WriteString("   \r\n") // blank: no row
			continue
		case i%131 == 7:
			b.WriteString("{\"n\": " + strconv.Itoa(i) + ",\n")
			wants = append(wants, want{line, row, ProblemMalformed})
		case i%211 == 9:
			b.WriteString("[" + strconv.Itoa(i) + "]\r\n")
			wants = append(wants, want{line, row, ProblemNotObject})
		default:
			b.WriteString("{\"n\": " + strconv.Itoa(i) + ", \"s\": \"é\\u00e9\"}\n")
			wants = append(wants, want{line, row, ""})
		}
		row++
	}
	data := strings.TrimSuffix(b.String(), "\n")
	c := newCollector(nil, 1<<20)
	if err := readJSON(strings.NewReader(data), "big.jsonl", JSONOptions{}, c); err != nil {
		t.Fatal(err)
	}
	rows, problems := c.rows, c.report.Problems
	for _, w := range wants {
		if w.bad == "" {
			r := rows[0]
			rows = rows[1:]
			if r.Source.Line != w.line || r.Source.Row != w.row {
				t.Fatalf("row at %s, want line %d row %d", r.Source, w.line, w.row)
			}
			if s, _ := r.Fields.Get("s"); s != "éé" {
				t.Fatalf("line %d: s = %q", w.line, s)
			}
			continue
		}
		p := problems[0]
		problems = problems[1:]
		if p.Source.Line != w.line || p.Source.Row != w.row || p.Class != w.bad {
			t.Fatalf("problem %s (%s), want line %d row %d %s", p.Source, p.Class, w.line, w.row, w.bad)
		}
	}
	if len(rows) != 0 || len(problems) != 0 {
		t.Fatalf("%d rows and %d problems left over", len(rows), len(problems))
	}
}
