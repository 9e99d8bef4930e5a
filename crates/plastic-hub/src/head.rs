//! The fields of a message the hub looks at (the access rules, the history); the rest is
//! skipped unread, borrowed from the payload where it can be.

use std::borrow::Cow;

use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct Head<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub command: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub sender: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub reply_to: Option<Cow<'a, str>>,
    /// Replies: the request's id, whether it succeeded, and its error.
    #[serde(borrow)]
    pub correlation_id: Option<Cow<'a, str>>,
    pub ok: Option<bool>,
    pub error: Option<ErrorHead<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorHead<'a> {
    #[serde(borrow)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
}

impl Head<'_> {
    /// `type`, or the older `message_type`.
    pub fn kind(&self) -> Option<&str> {
        self.ty.as_deref().or(self.message_type.as_deref())
    }
}
