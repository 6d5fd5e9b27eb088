package chatsapi

// The wire types of the Chats API new_message method. Field order follows the
// documentation's examples, so a marshalled Payload reads the way Kommo shows it.

// EventNewMessage is the event_type of a new message (or an import).
const EventNewMessage = "new_message"

// Message types the Chats API accepts.
const (
	TypeText     = "text"
	TypeContact  = "contact"
	TypeFile     = "file"
	TypeVideo    = "video"
	TypePicture  = "picture"
	TypeVoice    = "voice"
	TypeAudio    = "audio"
	TypeSticker  = "sticker"
	TypeLocation = "location"
)

// Event is the body of POST /v2/origin/custom/{scope_id}.
type Event struct {
	EventType string  `json:"event_type"`
	Payload   Payload `json:"payload"`
}

// Payload is one message as the Chats API takes it. It is also the record
// type every source adapter yields.
type Payload struct {
	Timestamp         int64        `json:"timestamp"`
	MsecTimestamp     int64        `json:"msec_timestamp"`
	MsgID             string       `json:"msgid"`
	ConversationID    string       `json:"conversation_id"`
	ConversationRefID string       `json:"conversation_ref_id,omitempty"`
	Sender            *Participant `json:"sender,omitempty"`
	Receiver          *Participant `json:"receiver,omitempty"`
	Message           *Message     `json:"message,omitempty"`
	Silent            bool         `json:"silent"`
	Source            *Source      `json:"source,omitempty"`
}

// Participant is a sender or receiver. ID is the integration's own id for the
// person; RefID is their amojo id (a Kommo user's amojo_id or the channel bot's id).
type Participant struct {
	ID          string   `json:"id"`
	RefID       string   `json:"ref_id,omitempty"`
	Name        string   `json:"name"`
	Avatar      string   `json:"avatar,omitempty"`
	Profile     *Profile `json:"profile,omitempty"`
	ProfileLink string   `json:"profile_link,omitempty"`
}

// Profile holds contact details copied into a new contact.
type Profile struct {
	Phone string `json:"phone,omitempty"`
	Email string `json:"email,omitempty"`
}

// Message is the message object of a payload.
type Message struct {
	Type          string    `json:"type"`
	Text          string    `json:"text,omitempty"`
	Media         string    `json:"media,omitempty"`
	FileName      string    `json:"file_name,omitempty"`
	FileSize      int64     `json:"file_size,omitempty"`
	MediaDuration int64     `json:"media_duration,omitempty"`
	StickerID     string    `json:"sticker_id,omitempty"`
	Location      *Location `json:"location,omitempty"`
	Contact       *Contact  `json:"contact,omitempty"`
	Post          *Post     `json:"post,omitempty"`
}

// Location is the body of a location message.
type Location struct {
	Lon float64 `json:"lon"`
	Lat float64 `json:"lat"`
}

// Contact is the body of a contact message.
type Contact struct {
	Name  string `json:"name"`
	Phone string `json:"phone"`
}

// Post marks a comment on a social post.
type Post struct {
	ID               string `json:"id"`
	URL              string `json:"url"`
	PreviewURL       string `json:"preview_url,omitempty"`
	PreviewPermalink string `json:"preview_permalink,omitempty"`
	Username         string `json:"username,omitempty"`
	Caption          string `json:"caption,omitempty"`
}

// Source picks the pipeline of the incoming lead.
type Source struct {
	ExternalID string `json:"external_id"`
}
