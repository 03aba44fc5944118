//! The error of parsing a name (`"vod"`, `"cuda"`, `"Running"`) into one of the crate's
//! small enums, and the one lookup every `FromStr` of them uses.

use std::fmt;

/// A name that is not one of a type's names: what [`FromStr`](std::str::FromStr) returns for
/// [`VideoCodec`](crate::VideoCodec), [`Container`](crate::Container),
/// [`StreamState`](crate::StreamState), [`ErrorKind`](super::ErrorKind), and the
/// `config` module's `HwKind`, `HwDevice`, `PlaylistMode` and `Reconnect`.
///
/// ```
/// use streamvisor::config::PlaylistMode;
/// let e = "dvr".parse::<PlaylistMode>().unwrap_err();
/// assert_eq!(e.to_string(), r#"unknown playlist mode "dvr": one of auto, vod, live"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseError {
    /// What was being parsed (`"playlist mode"`).
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The names accepted.
    pub expected: &'static [&'static str],
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?}: one of {}",
            self.what,
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for ParseError {}

/// The value named `text` (ASCII case ignored) among `values`, whose names are `names` (the
/// same order), or the error saying which names there are.
pub(crate) fn parse_name<T: Copy>(
    what: &'static str,
    text: &str,
    names: &'static [&'static str],
    values: &[T],
) -> Result<T, ParseError> {
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(text))
        .map(|i| values[i])
        .ok_or_else(|| ParseError {
            what,
            value: text.to_owned(),
            expected: names,
        })
}

/// For a fieldless enum: `name()` (the one name of each variant), `Display` (that name),
/// `FromStr` (that name, ASCII case ignored, or a [`ParseError`]) and, with the `serde`
/// feature, `Serialize`/`Deserialize` as that name, from one list.
macro_rules! enum_names {
    ($ty:ident, $what:literal, $(#[$doc:meta])* { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            $(#[$doc])*
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        /// Reads the name `Display` writes, ASCII case ignored.
        impl std::str::FromStr for $ty {
            type Err = $crate::error::ParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $crate::error::parse_name($what, text, &[$($name),+], &[$($ty::$variant),+])
            }
        }

        /// Its name, as `Display` writes it (feature `serde`).
        #[cfg(feature = "serde")]
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        /// From its name, as `FromStr` reads it (feature `serde`).
        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(<D::Error as serde::de::Error>::custom)
            }
        }
    };
}
pub(crate) use enum_names;
