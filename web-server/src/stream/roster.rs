//! Who watches a shared stream and who controls it (docs/browser-protocol.md §8): a plain state
//! machine, no sockets, so the rules of the hand-over are tested on their own and every transport
//! (a member's socket reader, the admin route) applies the same ones.
//!
//! Rules: the owner holds control when the stream opens; a request is granted at once when nobody
//! holds control, else queued oldest first for the controller; only the controller grants or
//! releases; an admin can force any member or nobody; a controller that leaves leaves nobody in
//! control until the oldest request is granted or someone asks.

use std::collections::VecDeque;

use serde::Serialize;
use thiserror::Error;

/// A member's id within one stream (1 is the owner).
pub type MemberId = u64;

/// Why a control change was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RosterError {
    /// Only the member holding control may hand it over or release it.
    #[error("only the member holding control may do that")]
    NotController,
    /// The member named is not watching this stream.
    #[error("no member {0} on this stream")]
    NoSuchMember(MemberId),
}

/// One browser connection watching the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: MemberId,
    /// The user name, or `guest` for a shared credential.
    pub name: String,
    /// The connection that opened the stream.
    pub owner: bool,
}

/// The members, the controller and the pending control requests of one stream.
#[derive(Debug, Default)]
pub struct Roster {
    members: Vec<Member>,
    controller: Option<MemberId>,
    requests: VecDeque<MemberId>,
    next_id: MemberId,
}

/// What a member is told about the roster (`{"Viewers":…}` without `share`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RosterView<'a> {
    pub you: MemberId,
    pub controller: Option<MemberId>,
    pub viewers: &'a [Member],
    pub requests: Vec<MemberId>,
}

impl Roster {
    /// A roster with the owner in control.
    pub fn new(owner_name: &str) -> (Roster, MemberId) {
        let mut roster = Roster::default();
        let id = roster.push(owner_name, true);
        roster.controller = Some(id);
        (roster, id)
    }

    fn push(&mut self, name: &str, owner: bool) -> MemberId {
        self.next_id += 1;
        let id = self.next_id;
        self.members.push(Member {
            id,
            name: name.to_string(),
            owner,
        });
        id
    }

    /// A viewer joins, without control.
    pub fn join(&mut self, name: &str) -> MemberId {
        self.push(name, false)
    }

    /// A member leaves; true if nobody is left.
    pub fn leave(&mut self, id: MemberId) -> bool {
        self.members.retain(|m| m.id != id);
        self.requests.retain(|r| *r != id);
        if self.controller == Some(id) {
            self.controller = None;
        }
        self.members.is_empty()
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: MemberId) -> bool {
        self.members.iter().any(|m| m.id == id)
    }

    /// The member whose input reaches the host.
    #[cfg(test)]
    fn controller(&self) -> Option<MemberId> {
        self.controller
    }

    /// Whether input from `id` goes to the host.
    pub fn may_input(&self, id: MemberId) -> bool {
        self.controller == Some(id)
    }

    /// `id` asks for control: granted at once when nobody holds it, else queued (once).
    pub fn request(&mut self, id: MemberId) -> Result<(), RosterError> {
        if !self.contains(id) {
            return Err(RosterError::NoSuchMember(id));
        }
        if self.controller.is_none() {
            self.controller = Some(id);
        } else if self.controller != Some(id) && !self.requests.contains(&id) {
            self.requests.push_back(id);
        }
        Ok(())
    }

    /// The controller `by` hands control to `to`.
    pub fn grant(&mut self, by: MemberId, to: MemberId) -> Result<(), RosterError> {
        if self.controller != Some(by) {
            return Err(RosterError::NotController);
        }
        self.force(Some(to))
    }

    /// The controller `by` gives control up; the oldest request, if any, gets it.
    pub fn release(&mut self, by: MemberId) -> Result<(), RosterError> {
        if self.controller != Some(by) {
            return Err(RosterError::NotController);
        }
        let next = self.requests.pop_front();
        self.controller = next;
        Ok(())
    }

    /// An admin gives control to `to`, or takes it from everyone.
    pub fn force(&mut self, to: Option<MemberId>) -> Result<(), RosterError> {
        if let Some(to) = to {
            if !self.contains(to) {
                return Err(RosterError::NoSuchMember(to));
            }
            self.requests.retain(|r| *r != to);
        }
        self.controller = to;
        Ok(())
    }

    /// What member `you` is told.
    pub fn view(&self, you: MemberId) -> RosterView<'_> {
        RosterView {
            you,
            controller: self.controller,
            viewers: &self.members,
            requests: self.requests.iter().copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_controls_until_it_hands_over() {
        let (mut r, owner) = Roster::new("alice");
        let vic = r.join("vic");
        assert!(r.may_input(owner) && !r.may_input(vic));
        r.request(vic).unwrap();
        r.request(vic).unwrap();
        assert_eq!(r.view(vic).requests, vec![vic], "a request is queued once");
        assert_eq!(r.grant(vic, vic), Err(RosterError::NotController));
        r.grant(owner, vic).unwrap();
        assert!(r.may_input(vic) && !r.may_input(owner));
        assert!(r.view(owner).requests.is_empty());
        assert_eq!(r.grant(vic, 99), Err(RosterError::NoSuchMember(99)));
    }

    #[test]
    fn a_request_with_nobody_in_control_is_granted_at_once() {
        let (mut r, owner) = Roster::new("alice");
        let vic = r.join("vic");
        assert!(!r.leave(owner), "vic is still watching");
        assert_eq!(r.controller(), None);
        r.request(vic).unwrap();
        assert!(r.may_input(vic));
        assert!(r.leave(vic), "the last member left");
    }

    #[test]
    fn release_passes_control_to_the_oldest_request() {
        let (mut r, owner) = Roster::new("alice");
        let (b, c) = (r.join("b"), r.join("c"));
        r.request(c).unwrap();
        r.request(b).unwrap();
        r.release(owner).unwrap();
        assert_eq!(r.controller(), Some(c));
        r.leave(c);
        assert_eq!(
            r.controller(),
            None,
            "a controller that leaves leaves nobody in control"
        );
        assert_eq!(r.view(b).requests, vec![b]);
    }

    #[test]
    fn an_admin_forces_anyone_or_nobody() {
        let (mut r, owner) = Roster::new("alice");
        let vic = r.join("vic");
        r.request(vic).unwrap();
        r.force(Some(vic)).unwrap();
        assert!(r.may_input(vic) && r.view(owner).requests.is_empty());
        r.force(None).unwrap();
        assert!(!r.may_input(vic) && !r.may_input(owner));
        assert_eq!(r.force(Some(42)), Err(RosterError::NoSuchMember(42)));
    }

    #[test]
    fn the_view_names_members_in_joining_order() {
        let (mut r, _) = Roster::new("alice");
        let vic = r.join("vic");
        let json = serde_json::to_string(&r.view(vic)).unwrap();
        assert_eq!(
            json,
            r#"{"you":2,"controller":1,"viewers":[{"id":1,"name":"alice","owner":true},{"id":2,"name":"vic","owner":false}],"requests":[]}"#
        );
    }
}
