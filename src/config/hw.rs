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

impl HwKind {
    /// FFmpeg's name for the device type (`cuda`, `vaapi`, `qsv`), also used in device keys
    /// and messages.
    pub fn name(self) -> &'static str {
        match self {
            HwKind::Cuda => "cuda",
            HwKind::Vaapi => "vaapi",
            HwKind::Qsv => "qsv",
        }
    }
}

impl fmt::Display for HwKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The key a device is known by in messages and session limits: `kind:device`, e.g.
/// `cuda:0` or `vaapi:/dev/dri/renderD128`.
pub fn device_key(kind: HwKind, device: &str) -> String {
    format!("{kind}:{device}")
}

/// A hardware device for decoding/encoding (validated now; used by the hardware path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HwDevice {
    /// The kind of device.
    pub kind: HwKind,
    /// Which device of that kind.
    pub device: String,
}

impl HwDevice {
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
