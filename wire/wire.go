package wire

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
// type every source adapter yields. The fields added after Source are
// omitted when nil, so a payload without them marshals byte for byte as
// before (the signature vectors depend on it).
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
	// ReplyTo quotes a message of the same chat.
	ReplyTo *ReplyTo `json:"reply_to,omitempty"`
	// Forwards carries a message forwarded from any chat of the integration.
	Forwards *Forwards `json:"forwards,omitempty"`
}

// ReplyTo is the reply_to object: the quoted message.
type ReplyTo struct {
	Message EmbeddedMessage `json:"message"`
}

// Forwards is the forwards object. The API takes one message for now.
type Forwards struct {
	Messages          []EmbeddedMessage `json:"messages"`
	ConversationID    string            `json:"conversation_id,omitempty"`
	ConversationRefID string            `json:"conversation_ref_id,omitempty"`
}

// EmbeddedMessage is a quoted or forwarded message. ID is Kommo's (amojo)
// message id: with it the API looks up the rest and links to the message.
// Otherwise MsgID (the integration's id) names it, and the API needs Type,
// Text, the timestamps and Sender to show it.
type EmbeddedMessage struct {
	ID            string          `json:"id,omitempty"`
	MsgID         string          `json:"msgid,omitempty"`
	Type          string          `json:"type,omitempty"`
	Text          string          `json:"text,omitempty"`
	Timestamp     int64           `json:"timestamp,omitempty"`
	MsecTimestamp int64           `json:"msec_timestamp,omitempty"`
	Sender        *EmbeddedSender `json:"sender,omitempty"`
	FileName      string          `json:"file_name,omitempty"`
	FileSize      int64           `json:"file_size,omitempty"`
	MediaDuration int64           `json:"media_duration,omitempty"`
	Location      *Location       `json:"location,omitempty"`
	Contact       *Contact        `json:"contact,omitempty"`
}

// EmbeddedSender is the author of an embedded message.
type EmbeddedSender struct {
	ID    string `json:"id,omitempty"`
	RefID string `json:"ref_id,omitempty"`
	Name  string `json:"name,omitempty"`
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
	// SharedPost shows a link preview of a post shared in the message.
	SharedPost *SharedPost `json:"shared_post,omitempty"`
	// DeliveryStatus sets the message's delivery status on import.
	DeliveryStatus *DeliveryStatus `json:"delivery_status,omitempty"`
}

// SharedPostType is the one type a shared post has.
const SharedPostType = "post"

// SharedPost is a post shared in a message. The API prefers
// PreviewPermalink to PreviewLink when both are given.
type SharedPost struct {
	URL              string `json:"url"`
	PreviewLink      string `json:"preview_link,omitempty"`
	PreviewPermalink string `json:"preview_permalink,omitempty"`
	Type             string `json:"type"` // SharedPostType
	SiteName         string `json:"site_name,omitempty"`
}

// Delivery status codes; no status means sent.
const (
	StatusDelivered = 1
	StatusRead      = 2
	StatusError     = -1
)

// DeliveryStatus is a message's delivery status. ErrorCode (901 the user
// deleted the chat, 902 the integration is disabled on the channel's side,
// 903 internal error, 904 the conversation cannot be created, 905 other)
// is required with StatusError, and Error with 905.
type DeliveryStatus struct {
	StatusCode int    `json:"status_code"`
	ErrorCode  int    `json:"error_code,omitempty"`
	Error      string `json:"error,omitempty"`
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
