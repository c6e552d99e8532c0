package slacktest

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// validateBlocks applies the Block Kit limits Slack enforces with
// invalid_blocks (see NOTES.md), so a message the real Slack would refuse is
// refused here too. Unknown block and element types pass unchecked. Each
// error names the JSON pointer of the offending field.
func validateBlocks(raw json.RawMessage) []string {
	var blocks []map[string]any
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return []string{"blocks must be an array of objects [json-pointer:/blocks]"}
	}
	v := &blockValidator{}
	if len(blocks) > 50 {
		v.errorf("/blocks", "must contain at most 50 blocks, got %d", len(blocks))
	}
	blockIDs := map[string]bool{}
	for i, b := range blocks {
		p := fmt.Sprintf("/blocks/%d", i)
		if id, ok := b["block_id"].(string); ok {
			v.maxLen(p+"/block_id", id, 255)
			if blockIDs[id] {
				v.errorf(p+"/block_id", "duplicate block_id %q", id)
			}
			blockIDs[id] = true
		}
		switch b["type"] {
		case "section":
			text, hasText := b["text"].(map[string]any)
			fields, _ := b["fields"].([]any)
			if !hasText && len(fields) == 0 {
				v.errorf(p, "section needs text or fields")
			}
			if hasText {
				v.textObject(p+"/text", text, 3000, false)
			}
			if len(fields) > 10 {
				v.errorf(p+"/fields", "at most 10 fields, got %d", len(fields))
			}
			for j, f := range fields {
				if fo, ok := f.(map[string]any); ok {
					v.textObject(fmt.Sprintf("%s/fields/%d", p, j), fo, 2000, false)
				}
			}
			if acc, ok := b["accessory"].(map[string]any); ok {
				v.element(p+"/accessory", acc)
			}
		case "header":
			text, _ := b["text"].(map[string]any)
			v.textObject(p+"/text", text, 150, true)
		case "actions":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > 25 {
				v.errorf(p+"/elements", "actions needs 1 to 25 elements, got %d", len(els))
			}
			actionIDs := map[string]bool{}
			for j, e := range els {
				eo, _ := e.(map[string]any)
				ep := fmt.Sprintf("%s/elements/%d", p, j)
				v.element(ep, eo)
				if id, ok := eo["action_id"].(string); ok {
					if actionIDs[id] {
						v.errorf(ep+"/action_id", "duplicate action_id %q in block", id)
					}
					actionIDs[id] = true
				}
			}
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > 10 {
				v.errorf(p+"/elements", "context needs 1 to 10 elements, got %d", len(els))
			}
			for j, e := range els {
				if eo, ok := e.(map[string]any); ok && (eo["type"] == "mrkdwn" || eo["type"] == "plain_text") {
					v.textObject(fmt.Sprintf("%s/elements/%d", p, j), eo, 3000, false)
				}
			}
		case nil:
			v.errorf(p+"/type", "missing block type")
		}
	}
	return v.errs
}

type blockValidator struct{ errs []string }

func (v *blockValidator) errorf(pointer, format string, args ...any) {
	v.errs = append(v.errs, fmt.Sprintf(format, args...)+" [json-pointer:"+pointer+"]")
}

func (v *blockValidator) maxLen(pointer, s string, n int) {
	if c := utf8.RuneCountInString(s); c > n {
		v.errorf(pointer, "must be at most %d characters, got %d", n, c)
	}
}

// textObject checks a text object: known type, non-empty text within limit.
func (v *blockValidator) textObject(pointer string, t map[string]any, limit int, plainOnly bool) {
	if t == nil {
		v.errorf(pointer, "missing text object")
		return
	}
	typ, _ := t["type"].(string)
	switch {
	case plainOnly && typ != "plain_text":
		v.errorf(pointer+"/type", "must be plain_text, got %q", typ)
	case typ != "plain_text" && typ != "mrkdwn":
		v.errorf(pointer+"/type", "unknown text type %q", typ)
	}
	text, _ := t["text"].(string)
	if text == "" {
		v.errorf(pointer+"/text", "must not be empty")
	}
	v.maxLen(pointer+"/text", text, limit)
}

func (v *blockValidator) element(pointer string, e map[string]any) {
	if e == nil {
		v.errorf(pointer, "element must be an object")
		return
	}
	if id, ok := e["action_id"].(string); ok {
		v.maxLen(pointer+"/action_id", id, 255)
	}
	if e["type"] != "button" {
		return
	}
	text, _ := e["text"].(map[string]any)
	v.textObject(pointer+"/text", text, 75, true)
	if val, ok := e["value"].(string); ok {
		v.maxLen(pointer+"/value", val, 2000)
	}
	if style, ok := e["style"].(string); ok && style != "primary" && style != "danger" {
		v.errorf(pointer+"/style", "must be primary or danger, got %q", style)
	}
	if c, ok := e["confirm"].(map[string]any); ok {
		for _, f := range []struct {
			field string
			limit int
		}{{"title", 100}, {"text", 300}, {"confirm", 30}, {"deny", 30}} {
			field := f.field
			t, ok := c[field].(map[string]any)
			if !ok {
				if field == "deny" {
					continue // optional
				}
				v.errorf(pointer+"/confirm/"+field, "missing")
				continue
			}
			v.textObject(pointer+"/confirm/"+field, t, f.limit, field != "text")
		}
	}
}
