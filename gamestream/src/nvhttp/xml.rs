//! The `<root status_code=…>` XML envelope (spec §1.2): a tiny element tree for parsing and a
//! string builder for writing. Every NVHTTP body is a flat list of simple text elements (plus the
//! nested `App` / `DisplayMode` lists), so a generic tree is all the structure needed.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::NvHttpError;

const MAX_DEPTH: usize = 16;

/// One XML element with its concatenated text and child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlElement {
    /// Local name.
    pub name: String,
    /// Unescaped text content, trimmed.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<XmlElement>,
}

impl XmlElement {
    /// Text of the first child called `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.text.as_str())
    }

    /// All children called `name`.
    pub fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a XmlElement> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// A parsed NVHTTP response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlResponse {
    /// `status_code` attribute of `<root>`.
    pub status_code: i64,
    /// `status_message` attribute, if any.
    pub status_message: Option<String>,
    /// The `<root>` element itself (its children are the payload).
    pub root: XmlElement,
}

impl XmlResponse {
    /// Parses a body; fails on malformed XML, a missing `<root>` or a missing/non-numeric
    /// `status_code`. Does not judge the status code (see [`XmlResponse::ok`]).
    pub fn parse(body: &[u8]) -> Result<XmlResponse, NvHttpError> {
        let mut reader = Reader::from_reader(body);
        let mut stack: Vec<XmlElement> = Vec::new();
        let mut status: Option<(Option<String>, Option<String>)> = None;
        let mut done: Option<XmlElement> = None;
        loop {
            let event = reader.read_event().map_err(xml_err)?;
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    if done.is_some() {
                        return Err(NvHttpError::Xml("content after </root>".into()));
                    }
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    if stack.is_empty() {
                        if name != "root" {
                            return Err(NvHttpError::Xml(format!(
                                "top element is <{name}>, not <root>"
                            )));
                        }
                        status = Some(root_attributes(e, &reader)?);
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(NvHttpError::Xml("nesting too deep".into()));
                    }
                    stack.push(XmlElement {
                        name,
                        ..XmlElement::default()
                    });
                    if matches!(event, Event::Empty(_)) {
                        close_element(&mut stack, &mut done);
                    }
                }
                Event::End(_) => close_element(&mut stack, &mut done),
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t.xml_content().map_err(xml_err)?);
                    }
                }
                Event::CData(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t.decode().map_err(xml_err)?);
                    }
                }
                Event::GeneralRef(r) => {
                    if let Some(top) = stack.last_mut() {
                        if let Some(ch) = r.resolve_char_ref().map_err(xml_err)? {
                            top.text.push(ch);
                        } else {
                            let name = r.decode().map_err(xml_err)?;
                            let value = quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| {
                                    NvHttpError::Xml(format!("unknown entity &{name};"))
                                })?;
                            top.text.push_str(value);
                        }
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let root = done.ok_or_else(|| NvHttpError::Xml("no complete <root> element".into()))?;
        let (code, message) = status.unwrap_or_default();
        let code = code.ok_or_else(|| NvHttpError::Xml("missing status_code".into()))?;
        let status_code = code
            .trim()
            .parse::<i64>()
            .map_err(|_| NvHttpError::Xml(format!("bad status_code {code:?}")))?;
        Ok(XmlResponse {
            status_code,
            status_message: message,
            root,
        })
    }

    /// `Ok(self)` iff `status_code == 200`, else [`NvHttpError::Status`].
    pub fn ok(self) -> Result<XmlResponse, NvHttpError> {
        if self.status_code == 200 {
            Ok(self)
        } else {
            Err(NvHttpError::Status {
                code: self.status_code,
                message: self.status_message.unwrap_or_default(),
            })
        }
    }

    /// Text of the first root child called `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.root.child_text(name)
    }

    /// Like [`text`](Self::text) but the element is required.
    pub fn required(&self, name: &'static str) -> Result<&str, NvHttpError> {
        self.text(name).ok_or(NvHttpError::MissingField(name))
    }
}

fn xml_err(e: impl std::fmt::Display) -> NvHttpError {
    NvHttpError::Xml(e.to_string())
}

fn close_element(stack: &mut Vec<XmlElement>, done: &mut Option<XmlElement>) {
    if let Some(mut el) = stack.pop() {
        let trimmed = el.text.trim();
        if trimmed.len() != el.text.len() {
            el.text = trimmed.to_string();
        }
        match stack.last_mut() {
            Some(parent) => parent.children.push(el),
            None => *done = Some(el),
        }
    }
}

fn root_attributes(
    e: &BytesStart<'_>,
    reader: &Reader<&[u8]>,
) -> Result<(Option<String>, Option<String>), NvHttpError> {
    let mut code = None;
    let mut message = None;
    for attr in e.attributes() {
        let attr = attr.map_err(xml_err)?;
        let value = attr
            .decode_and_unescape_value(reader.decoder())
            .map_err(xml_err)?
            .into_owned();
        match attr.key.local_name().as_ref() {
            b"status_code" => code = Some(value),
            b"status_message" => message = Some(value),
            _ => {}
        }
    }
    Ok((code, message))
}

/// XML escaping that also protects `\r` (which a parser would otherwise normalise away).
fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).replace('\r', "&#13;")
}

/// Builds an NVHTTP response body the way Sunshine formats it.
#[derive(Debug, Clone)]
pub struct XmlBuilder {
    out: String,
}

impl XmlBuilder {
    /// Starts `<root status_code="…" [status_message="…"]>`.
    pub fn new(status_code: i64, status_message: Option<&str>) -> Self {
        let mut out =
            String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root status_code=\"");
        out.push_str(&status_code.to_string());
        out.push('"');
        if let Some(m) = status_message {
            out.push_str(" status_message=\"");
            out.push_str(&escape(m));
            out.push('"');
        }
        out.push('>');
        XmlBuilder { out }
    }

    /// `<name>escaped value</name>`.
    pub fn elem(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let value = value.to_string();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.out.push_str(&escape(&value));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Opens a container element.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Closes a container element.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Closes `<root>` and returns the document.
    pub fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.out);
        out.push_str("</root>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope_and_entities() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<root status_code="401" status_message="The client is not authorized. Certificate verification failed."/>"#;
        let r = XmlResponse::parse(body).unwrap();
        assert_eq!(r.status_code, 401);
        assert!(matches!(
            r.clone().ok(),
            Err(NvHttpError::Status { code: 401, .. })
        ));
        let r = XmlResponse::parse(b"<root status_code=\"200\"><hostname> a &amp; b&#33; </hostname><x><![CDATA[<y>]]></x></root>").unwrap();
        assert_eq!(r.text("hostname"), Some("a & b!"));
        assert_eq!(r.text("x"), Some("<y>"));
        assert!(XmlResponse::parse(b"<nope status_code=\"200\"/>").is_err());
        assert!(XmlResponse::parse(b"<root><a></b></root>").is_err());
        assert!(XmlResponse::parse(b"<root status_code=\"x\"/>").is_err());
        assert!(XmlResponse::parse(b"<root status_code=\"200\">").is_err());
    }

    #[test]
    fn builder_round_trips() {
        let mut b = XmlBuilder::new(400, Some("a \"quoted\" <msg>"));
        b.elem("hostname", "x & y")
            .open("App")
            .elem("ID", 5)
            .close("App");
        let xml = b.finish();
        let r = XmlResponse::parse(xml.as_bytes()).unwrap();
        assert_eq!(r.status_code, 400);
        assert_eq!(r.status_message.as_deref(), Some("a \"quoted\" <msg>"));
        assert_eq!(r.text("hostname"), Some("x & y"));
        assert_eq!(
            r.root
                .children_named("App")
                .next()
                .unwrap()
                .child_text("ID"),
            Some("5")
        );
    }
}
