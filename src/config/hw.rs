//! Hardware devices a stream may decode on, and the one name each is known by.

use std::fmt;

use crate::error::{Error, Result};

/// Kind of hardware device a stream may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HwKind {
    /// NVIDIA CUDA (NVDEC/NVENC); the device is a GPU index such as `0`.
    Cuda,
    /// VA-API; the device is a DRM render node such as `/dev/dri/renderD128`.
    Vaapi,
    /// Intel Quick Sync; the device is a DRM render node.
    Qsv,
}

crate::error::enum_names!(HwKind, "hardware kind",
    /// FFmpeg's name for the device type (`cuda`, `vaapi`, `qsv`), also used in device keys,
    /// messages and config files (`Display` writes it, `FromStr` reads it).
    {
        Cuda => "cuda",
        Vaapi => "vaapi",
        Qsv => "qsv",
    }
);

/// A hardware device for decoding/encoding (validated now; used by the hardware path).
///
/// Written `kind:device` (`Display`: the key a device is known by in messages and in
/// [`ResourceCapacity::with_hw_sessions`](crate::ResourceCapacity::with_hw_sessions));
/// `FromStr` reads that form:
///
/// ```
/// use streamvisor::config::{HwDevice, HwKind};
/// let d: HwDevice = "vaapi:/dev/dri/renderD128".parse()?;
/// assert_eq!((d.kind, d.device.as_str()), (HwKind::Vaapi, "/dev/dri/renderD128"));
/// assert_eq!(d.to_string(), "vaapi:/dev/dri/renderD128");
/// # Ok::<(), streamvisor::error::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct HwDevice {
    /// The kind of device.
    pub kind: HwKind,
    /// Which device of that kind.
    pub device: String,
}

impl HwDevice {
    /// A device of this kind (checked when a config holding it is built).
    pub fn new(kind: HwKind, device: impl Into<String>) -> Self {
        Self {
            kind,
            device: device.into(),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let ok = match self.kind {
            HwKind::Cuda => {
                !self.device.is_empty()
                    && self.device.len() <= 3
                    && self.device.bytes().all(|b| b.is_ascii_digit())
            }
            HwKind::Vaapi | HwKind::Qsv => {
                self.device.starts_with("/dev/dri/")
                    && !self.device.contains("..")
                    && self.device.len() <= 64
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::config(
                "hw_device.device",
                format!(
                    "{:?} is not a valid {} device (a GPU index for CUDA, /dev/dri/... otherwise)",
                    self.device, self.kind
                ),
            ))
        }
    }
}

impl fmt::Display for HwDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.device)
    }
}

/// As `kind:device`, the form `Display` writes (feature `serde`).
#[cfg(feature = "serde")]
impl serde::Serialize for HwDevice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reads `kind:device` (`cuda:0`, `vaapi:/dev/dri/renderD128`); the device is checked when
/// a config holding it is built.
impl std::str::FromStr for HwDevice {
    type Err = crate::error::ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, device) = text.split_once(':').unwrap_or((text, ""));
        Ok(Self::new(kind.parse()?, device))
    }
}
