package datasets

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// csvNullStrings are the cell texts pandas.read_csv reads as missing (its
// default na_values); Hugging Face's csv builder goes through pandas.
var csvNullStrings = map[string]bool{
	"": true, "#N/A": true, "#N/A N/A": true, "#NA": true, "-1.#IND": true, "-1.#QNAN": true,
	"-NaN": true, "-nan": true, "1.#IND": true, "1.#QNAN": true, "<NA>": true, "N/A": true,
	"NA": true, "NULL": true, "NaN": true, "None": true, "n/a": true, "nan": true, "null": true,
}

// readCSV reads a comma-separated file with a header line, inferring each
// column's type the way pandas does: all integers → int (float when a cell is
// missing, as pandas turns the column into float64 with NaN), all numbers →
// float, all True/False → bool, otherwise string. Missing cells are null. A
// line with more cells than the header is a bad row; one with fewer is padded
// with nulls.
func readCSV(r io.Reader, name string, c *collector) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if head, _ := br.Peek(3); bytes.Equal(head, utf8BOM) {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: header: %w", name, err)
	}
	if !allValidUTF8(header) {
		return fmt.Errorf("%s:1: header is not valid UTF-8", name)
	}
	header = dedupeHeader(header)

	type rawRow struct {
		cells []string
		src   Source
	}
	var rows []rawRow
	row := 0
	for {
		before := cr.InputOffset()
		cells, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.StartLine
			}
			c.bad(Source{File: name, Line: line, Row: row}, ProblemMalformed, "malformed CSV: "+err.Error())
			row++
			if cr.InputOffset() == before {
				return fmt.Errorf("%s:%d: CSV reader made no progress: %w", name, line, err)
			}
			continue
		}
		src := Source{File: name, Line: line, Row: row}
		row++
		if len(cells) == 1 && cells[0] == "" && len(header) > 1 {
			continue // a blank line (pandas skips them)
		}
		if !allValidUTF8(cells) {
			c.bad(src, ProblemMalformed, "line is not valid UTF-8")
			continue
		}
		if len(cells) > len(header) {
			c.bad(src, ProblemFieldCount, fmt.Sprintf("expected %d fields (the header's), saw %d", len(header), len(cells)))
			continue
		}
		rows = append(rows, rawRow{cells, src})
	}

	kinds := make([]csvKind, len(header))
	hasNull := make([]bool, len(header))
	for col := range header {
		kinds[col] = csvInt
		for _, r := range rows {
			if col >= len(r.cells) || csvNullStrings[r.cells[col]] {
				hasNull[col] = true
				continue
			}
			kinds[col] = widenCSVKind(kinds[col], r.cells[col])
		}
		if kinds[col] == csvInt && hasNull[col] {
			kinds[col] = csvFloat
		}
	}
	for _, r := range rows {
		fields := make(Object, len(header))
		for col, h := range header {
			var v any
			if col < len(r.cells) && !csvNullStrings[r.cells[col]] {
				v = convertCSVCell(kinds[col], r.cells[col])
			}
			fields[col] = Field{Name: h, Value: v}
		}
		c.row(fields, r.src)
	}
	return nil
}

type csvKind int

const (
	csvInt csvKind = iota
	csvFloat
	csvBool
	csvString
)

func widenCSVKind(k csvKind, cell string) csvKind {
	switch k {
	case csvInt:
		if _, err := strconv.ParseInt(strings.TrimSpace(cell), 10, 64); err == nil {
			return csvInt
		}
		if _, ok := parseCSVFloat(cell); ok {
			return csvFloat
		}
		if _, ok := parseCSVBool(cell); ok {
			return csvBool
		}
	case csvFloat:
		if _, ok := parseCSVFloat(cell); ok {
			return csvFloat
		}
	case csvBool:
		if _, ok := parseCSVBool(cell); ok {
			return csvBool
		}
	}
	return csvString
}

func parseCSVFloat(cell string) (float64, bool) {
	s := strings.TrimSpace(cell)
	switch strings.ToLower(s) {
	case "inf", "+inf", "infinity", "+infinity":
		return math.Inf(1), true
	case "-inf", "-infinity":
		return math.Inf(-1), true
	}
	// strconv accepts spellings pandas does not (hex floats, "_"); keep to
	// plain decimal.
	for _, ch := range s {
		if !strings.ContainsRune("0123456789+-.eE", ch) {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func parseCSVBool(cell string) (bool, bool) {
	switch cell {
	case "True", "TRUE", "true":
		return true, true
	case "False", "FALSE", "false":
		return false, true
	}
	return false, false
}

func convertCSVCell(k csvKind, cell string) any {
	switch k {
	case csvInt:
		n, _ := strconv.ParseInt(strings.TrimSpace(cell), 10, 64)
		return n
	case csvFloat:
		f, _ := parseCSVFloat(cell)
		return f
	case csvBool:
		b, _ := parseCSVBool(cell)
		return b
	default:
		return cell
	}
}

// dedupeHeader renames repeated column names the way pandas does: "a", "a.1".
func dedupeHeader(header []string) []string {
	taken := map[string]bool{}
	out := make([]string, len(header))
	for i, h := range header {
		name := h
		for n := 1; taken[name]; n++ {
			name = fmt.Sprintf("%s.%d", h, n)
		}
		taken[name] = true
		out[i] = name
	}
	return out
}

// readText reads one row {"text": line} per line, as Hugging Face's text
// builder does by default: "\n", "\r\n" and "\r" all end a line, the line
// break is dropped, empty lines are rows too, and a final line break does not
// start another row.
func readText(r io.Reader, name string, c *collector) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if head, _ := br.Peek(3); bytes.Equal(head, utf8BOM) {
		_, _ = br.Discard(3)
	}
	var line []byte
	lineNo := 0
	for {
		var err error
		line, err = readLine(br, line[:0])
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(line) == 0 && err != nil {
			return nil
		}
		// Split on lone '\r' too (old Mac line ends), and drop the '\r' of "\r\n".
		parts := bytes.Split(line, []byte{'\r'})
		if len(parts) > 1 && len(parts[len(parts)-1]) == 0 {
			parts = parts[:len(parts)-1]
			if len(parts) == 0 {
				parts = [][]byte{{}}
			}
		}
		for _, p := range parts {
			lineNo++
			src := Source{File: name, Line: lineNo, Row: lineNo - 1}
			if !utf8.Valid(p) {
				c.bad(src, ProblemMalformed, "line is not valid UTF-8")
				continue
			}
			c.row(Object{{Name: "text", Value: string(p)}}, src)
		}
		if err != nil {
			return nil
		}
	}
}

func allValidUTF8(cells []string) bool {
	for _, s := range cells {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}
