//! Finding a member name that occurs twice in one JSON object, walking the body without
//! building it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// A member name that occurs twice in one JSON object, and the pointer to its second occurrence.
#[derive(Debug, PartialEq)]
pub(super) struct DuplicateMember {
    pub(super) pointer: String,
    pub(super) name: String,
}

/// The first duplicate member name in a JSON text, at any depth. Parsers disagree on which value
/// of a duplicate wins, so such a document means different things to different readers.
/// Malformed JSON is `None`, even after a duplicate: the typed parse reports it.
pub(super) fn duplicate_member(bytes: &[u8]) -> Option<DuplicateMember> {
    let mut names = Vec::new();
    let mut trail = None;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let walk = MemberWalk {
        names: &mut names,
        trail: &mut trail,
    };
    walk.deserialize(&mut deserializer).err()?;
    let mut segments = trail?;
    // A duplicate in a document that turns out malformed: the typed parse says it is malformed.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).ok()?;
    let name = segments.first().cloned().unwrap_or_default();
    let mut pointer = String::new();
    while let Some(segment) = segments.pop() {
        crate::core::secrets::push_token(&mut pointer, &segment);
    }
    Some(DuplicateMember { pointer, name })
}

/// Objects with more members than this are checked with a hash set instead of a scan.
const MEMBER_SCAN_LIMIT: usize = 32;

/// Walks one JSON value without building it, failing on the first duplicate member name.
struct MemberWalk<'a, 'de> {
    /// The member names of every object being walked, outermost first; each object's names are
    /// the tail it pushed, truncated when it ends (one buffer for the whole document).
    names: &'a mut Vec<Cow<'de, str>>,
    /// Set on a duplicate: the path to it, innermost segment first (built only on that error).
    trail: &'a mut Option<Vec<String>>,
}

impl<'de> MemberWalk<'_, 'de> {
    fn nested(&mut self) -> MemberWalk<'_, 'de> {
        MemberWalk {
            names: &mut *self.names,
            trail: &mut *self.trail,
        }
    }

    /// Adds `segment` to the path of a duplicate found below it.
    fn on_the_way_out<T, E>(
        &mut self,
        result: Result<T, E>,
        segment: impl ToString,
    ) -> Result<T, E> {
        if result.is_err()
            && let Some(trail) = self.trail.as_mut()
        {
            trail.push(segment.to_string());
        }
        result
    }
}

impl<'de> DeserializeSeed<'de> for MemberWalk<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberWalk<'_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let element = seq.next_element_seed(self.nested());
            match self.on_the_way_out(element, index)? {
                Some(()) => index += 1,
                None => return Ok(()),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let start = self.names.len();
        let mut many: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(name) = map.next_key_seed(MemberName)? {
            let seen = match &many {
                Some(set) => set.contains(&name),
                None => self.names[start..].contains(&name),
            };
            if seen {
                *self.trail = Some(vec![name.into_owned()]);
                return Err(serde::de::Error::custom("duplicate member name"));
            }
            let value = map.next_value_seed(self.nested());
            self.on_the_way_out(value, &name)?;
            match &mut many {
                Some(set) => {
                    set.insert(name);
                }
                None if self.names.len() - start < MEMBER_SCAN_LIMIT => self.names.push(name),
                None => {
                    let mut set: HashSet<_> = self.names.drain(start..).collect();
                    set.insert(name);
                    many = Some(set);
                }
            }
        }
        self.names.truncate(start);
        Ok(())
    }
}

/// A member name, borrowed from the body unless it has escapes.
struct MemberName;

impl<'de> DeserializeSeed<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(name))
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name.to_owned()))
    }
}
