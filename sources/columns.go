package sources

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/wire"
)

// columnPlan says what each input column (CSV header cell or postgres result
// column) feeds: a canonical field, the whole payload, or nothing.
type columnPlan struct {
	names   []string // input column names, for messages and raw rows
	canon   []string // canonical name per input column; "" = ignored
	payload int      // index of the json payload column (postgres), or -1
}

// planColumns matches input columns to canonical names. It fails, listing
// them, on unknown columns (unless ignored), on --map entries naming a column
// that is not there, on two columns feeding one field, and when the columns
// cannot possibly make a valid message.
func planColumns(names []string, spec Spec, allowPayload bool) (columnPlan, error) {
	plan := columnPlan{names: names, canon: make([]string, len(names)), payload: -1}
	theirs := make(map[string]string, len(spec.ColumnMap)) // lower(theirs) -> canonical
	for canon, t := range spec.ColumnMap {
		theirs[strings.ToLower(strings.TrimSpace(t))] = canon
	}
	ignore := make(map[string]bool, len(spec.IgnoreColumns))
	for _, c := range spec.IgnoreColumns {
		ignore[strings.ToLower(strings.TrimSpace(c))] = true
	}
	seen := map[string]string{} // canonical -> input name
	found := map[string]bool{}  // lower(input) present
	var unknown []string
	for i, name := range names {
		key := strings.ToLower(strings.TrimSpace(name))
		found[key] = true
		var canon string
		switch {
		case ignore[key]:
			continue
		case theirs[key] != "":
			canon = theirs[key]
		case allowPayload && key == "payload":
			if plan.payload >= 0 {
				return plan, fmt.Errorf("two payload columns")
			}
			plan.payload = i
			continue
		default:
			if _, ok := canonicalSet[key]; !ok {
				unknown = append(unknown, name)
				continue
			}
			if _, mapped := spec.ColumnMap[key]; mapped {
				return plan, fmt.Errorf("column %q is canonical but --map %s=%s names another column for it; ignore one of them (--ignore-columns)", name, key, spec.ColumnMap[key])
			}
			canon = key
		}
		if prev, dup := seen[canon]; dup {
			return plan, fmt.Errorf("columns %q and %q both give %s", prev, name, canon)
		}
		seen[canon] = name
		plan.canon[i] = canon
	}
	if len(unknown) > 0 {
		return plan, fmt.Errorf("unknown columns %s; map them (--map canonical=theirs) or ignore them (--ignore-columns); canonical columns: %s",
			quoteList(unknown), strings.Join(CanonicalColumns, ", "))
	}
	missing := map[string]bool{}
	for canon, t := range spec.ColumnMap {
		if !found[strings.ToLower(strings.TrimSpace(t))] {
			missing[canon+"="+t] = true
		}
	}
	if len(missing) > 0 {
		return plan, fmt.Errorf("--map %s: no such column (columns: %s)", strings.Join(sortedKeys(missing), ", "), quoteList(names))
	}
	if plan.payload >= 0 {
		if len(seen) > 0 {
			return plan, fmt.Errorf("a payload column holds the whole message; the other columns (%s) would be unused: drop or ignore them", quoteList(valuesOf(seen)))
		}
		return plan, nil
	}
	var need []string
	for _, c := range []string{"conversation_id", "msgid", "sender_id", "sender_name", "message_type"} {
		if seen[c] == "" {
			need = append(need, c)
		}
	}
	if seen["timestamp"] == "" && seen["msec_timestamp"] == "" {
		need = append(need, "timestamp or msec_timestamp")
	}
	if len(need) > 0 {
		return plan, fmt.Errorf("no column for %s (required; --map canonical=theirs renames a column)", strings.Join(need, ", "))
	}
	return plan, nil
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

func valuesOf(m map[string]string) []string {
	set := map[string]bool{}
	for _, v := range m {
		set[v] = true
	}
	return sortedKeys(set)
}

// builder assembles a payload from canonical cells. Empty and blank (only
// whitespace) cells are absent: the caller does not set them.
type builder struct {
	tr         timeRules // how written times are read; kept by reset
	p          wire.Payload
	tsMs       int64 // milliseconds from an RFC 3339 or timestamptz timestamp cell
	lat, lon   bool  // location cells present
	latV, lonV float64
}

func (b *builder) reset() { *b = builder{tr: b.tr} }

func (b *builder) sender() *wire.Participant {
	if b.p.Sender == nil {
		b.p.Sender = &wire.Participant{}
	}
	return b.p.Sender
}

func (b *builder) receiver() *wire.Participant {
	if b.p.Receiver == nil {
		b.p.Receiver = &wire.Participant{}
	}
	return b.p.Receiver
}

func (b *builder) message() *wire.Message {
	if b.p.Message == nil {
		b.p.Message = &wire.Message{}
	}
	return b.p.Message
}

func (b *builder) post() *wire.Post {
	m := b.message()
	if m.Post == nil {
		m.Post = &wire.Post{}
	}
	return m.Post
}

func (b *builder) contact() *wire.Contact {
	m := b.message()
	if m.Contact == nil {
		m.Contact = &wire.Contact{}
	}
	return m.Contact
}

func (b *builder) sharedPost() *wire.SharedPost {
	m := b.message()
	if m.SharedPost == nil {
		m.SharedPost = &wire.SharedPost{}
	}
	return m.SharedPost
}

func (b *builder) deliveryStatus() *wire.DeliveryStatus {
	m := b.message()
	if m.DeliveryStatus == nil {
		m.DeliveryStatus = &wire.DeliveryStatus{}
	}
	return m.DeliveryStatus
}

// forwards holds the one forwarded message a CSV row can name.
func (b *builder) forwards() *wire.Forwards {
	if b.p.Forwards == nil {
		b.p.Forwards = &wire.Forwards{}
	}
	return b.p.Forwards
}

func profile(u *wire.Participant) *wire.Profile {
	if u.Profile == nil {
		u.Profile = &wire.Profile{}
	}
	return u.Profile
}

// setParticipant stores one sender_* or receiver_* cell (field without the prefix).
func setParticipant(u *wire.Participant, field, v string) {
	switch field {
	case "id":
		u.ID = v
	case "name":
		u.Name = v
	case "ref_id":
		u.RefID = v
	case "avatar":
		u.Avatar = v
	case "profile_link":
		u.ProfileLink = v
	case "phone":
		profile(u).Phone = v
	case "email":
		profile(u).Email = v
	}
}

// jsonPath turns a canonical column name into the payload's JSON path.
func jsonPath(canon string) string {
	switch canon {
	case "message_location_lat":
		return "message.location.lat"
	case "message_location_lon":
		return "message.location.lon"
	case "message_contact_name":
		return "message.contact.name"
	case "message_contact_phone":
		return "message.contact.phone"
	case "sender_phone", "receiver_phone", "sender_email", "receiver_email":
		who, f, _ := strings.Cut(canon, "_")
		return who + ".profile." + f
	case "source_external_id":
		return "source.external_id"
	case "reply_to_msgid":
		return "reply_to.message.msgid"
	case "forward_msgid":
		return "forwards.messages[0].msgid"
	case "forward_conversation_id":
		return "forwards.conversation_id"
	case "delivery_status_code":
		return "message.delivery_status.status_code"
	case "delivery_status_error_code":
		return "message.delivery_status.error_code"
	case "delivery_status_error":
		return "message.delivery_status.error"
	}
	if rest, ok := strings.CutPrefix(canon, "shared_post_"); ok {
		return "message.shared_post." + rest
	}
	for _, prefix := range []string{"sender_", "receiver_", "message_", "post_"} {
		if rest, ok := strings.CutPrefix(canon, prefix); ok {
			if prefix == "post_" {
				return "message.post." + rest
			}
			return strings.TrimSuffix(prefix, "_") + "." + rest
		}
	}
	return canon
}

// set stores one non-empty cell.
func (b *builder) set(canon, v string) error {
	if field, ok := strings.CutPrefix(canon, "sender_"); ok {
		setParticipant(b.sender(), field, v)
		return nil
	}
	if field, ok := strings.CutPrefix(canon, "receiver_"); ok {
		setParticipant(b.receiver(), field, v)
		return nil
	}
	switch canon {
	case "conversation_id":
		b.p.ConversationID = v
	case "msgid":
		b.p.MsgID = v
	case "timestamp":
		return b.setTimestamp(v)
	case "msec_timestamp":
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fieldErr("msec_timestamp", "%q is not unix milliseconds", v)
		}
		b.p.MsecTimestamp = n
	case "message_type":
		b.message().Type = v
	case "message_text":
		b.message().Text = v
	case "message_media":
		b.message().Media = v
	case "message_file_name":
		b.message().FileName = v
	case "message_file_size", "message_media_duration":
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fieldErr(jsonPath(canon), "%q is not a whole number", v)
		}
		if canon == "message_file_size" {
			b.message().FileSize = n
		} else {
			b.message().MediaDuration = n
		}
	case "message_sticker_id":
		b.message().StickerID = v
	case "message_location_lat", "message_location_lon":
		f, err := parseCoord(v)
		if err != nil {
			return fieldErr(jsonPath(canon), "%q is not a number", v)
		}
		if canon == "message_location_lat" {
			b.lat, b.latV = true, f
		} else {
			b.lon, b.lonV = true, f
		}
	case "message_contact_name":
		b.contact().Name = v
	case "message_contact_phone":
		b.contact().Phone = v
	case "post_id":
		b.post().ID = v
	case "post_url":
		b.post().URL = v
	case "post_preview_url":
		b.post().PreviewURL = v
	case "post_preview_permalink":
		b.post().PreviewPermalink = v
	case "post_username":
		b.post().Username = v
	case "post_caption":
		b.post().Caption = v
	case "source_external_id":
		b.p.Source = &wire.Source{ExternalID: v}
	case "reply_to_msgid":
		b.p.ReplyTo = &wire.ReplyTo{Message: wire.EmbeddedMessage{MsgID: v}}
	case "forward_msgid":
		b.forwards().Messages = []wire.EmbeddedMessage{{MsgID: v}}
	case "forward_conversation_id":
		b.forwards().ConversationID = v
	case "shared_post_url":
		b.sharedPost().URL = v
	case "shared_post_preview_link":
		b.sharedPost().PreviewLink = v
	case "shared_post_preview_permalink":
		b.sharedPost().PreviewPermalink = v
	case "shared_post_site_name":
		b.sharedPost().SiteName = v
	case "delivery_status_code", "delivery_status_error_code":
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fieldErr(jsonPath(canon), "%q is not a whole number", v)
		}
		if canon == "delivery_status_code" {
			b.deliveryStatus().StatusCode = n
		} else {
			b.deliveryStatus().ErrorCode = n
		}
	case "delivery_status_error":
		b.deliveryStatus().Error = v
	}
	return nil
}

// parseCoord reads a latitude or longitude, also with a decimal comma, as
// Excel writes numbers where that is the decimal mark ("43,238949").
func parseCoord(v string) (float64, error) {
	v = strings.TrimSpace(v)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil && strings.Count(v, ",") == 1 && !strings.Contains(v, ".") {
		return strconv.ParseFloat(strings.Replace(v, ",", ".", 1), 64)
	}
	return f, err
}

// setTime stores a timestamptz (or timestamp) value from postgres, keeping its
// milliseconds.
func (b *builder) setTime(canon string, t time.Time) error {
	switch canon {
	case "timestamp":
		b.p.Timestamp, b.tsMs = t.Unix(), t.UnixMilli()
	case "msec_timestamp":
		b.p.MsecTimestamp = t.UnixMilli()
	default:
		return b.set(canon, t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// setTimestamp takes unix seconds, RFC 3339 or another written time
// (times.go: the common layouts, --time-format, --tz), keeping its
// milliseconds when no msec_timestamp is given.
func (b *builder) setTimestamp(v string) error {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		b.p.Timestamp = n
		return nil
	}
	t, err := b.tr.parse("timestamp", v)
	if err != nil {
		return err
	}
	return b.setTime("timestamp", t)
}

// finish completes the payload once every cell is set.
func (b *builder) finish() error {
	if b.p.MsecTimestamp == 0 && b.tsMs != 0 {
		b.p.MsecTimestamp = b.tsMs
	}
	if b.lat || b.lon {
		if !b.lat {
			return fieldErr("message.location.lat", "%w when message_location_lon is given", ErrRequired)
		}
		if !b.lon {
			return fieldErr("message.location.lon", "%w when message_location_lat is given", ErrRequired)
		}
		b.message().Location = &wire.Location{Lat: b.latV, Lon: b.lonV}
	}
	return nil
}
