//! Document vocabulary: the kinds of paper an order collects, the file types the
//! portal accepts (recognised by their first bytes, never by name), and the
//! filename rules.
//!
//! Guarantees: only PDF, PNG, JPEG and TIFF content is recognised; a stored
//! filename has no path, no control characters and at most 200 characters; the
//! `Content-Disposition` value built here is always a valid header carrying the name
//! both as RFC 5987 UTF-8 and as an ASCII fallback with no quote, backslash,
//! separator or control character in it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    FaceSheet,
    HistoryAndPhysical,
    DischargeSummary,
    MedicationList,
    FaceToFaceNote,
    SignedOrder,
    InsuranceCard,
    Other,
}

impl DocKind {
    pub const ALL: [DocKind; 8] = [
        DocKind::FaceSheet,
        DocKind::HistoryAndPhysical,
        DocKind::DischargeSummary,
        DocKind::MedicationList,
        DocKind::FaceToFaceNote,
        DocKind::SignedOrder,
        DocKind::InsuranceCard,
        DocKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::FaceSheet => "face_sheet",
            DocKind::HistoryAndPhysical => "history_and_physical",
            DocKind::DischargeSummary => "discharge_summary",
            DocKind::MedicationList => "medication_list",
            DocKind::FaceToFaceNote => "face_to_face_note",
            DocKind::SignedOrder => "signed_order",
            DocKind::InsuranceCard => "insurance_card",
            DocKind::Other => "other",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DocKind::FaceSheet => "Face sheet",
            DocKind::HistoryAndPhysical => "History and physical (H&P)",
            DocKind::DischargeSummary => "Discharge summary",
            DocKind::MedicationList => "Medication list",
            DocKind::FaceToFaceNote => "Face-to-face note",
            DocKind::SignedOrder => "Signed order",
            DocKind::InsuranceCard => "Insurance card",
            DocKind::Other => "Other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s.trim())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    Pdf,
    Png,
    Jpeg,
    Tiff,
}

/// How many leading bytes `FileType::sniff` needs to decide.
pub const SNIFF_LEN: usize = 8;

impl FileType {
    /// Recognises accepted content by its signature.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        const SIGNATURES: [(&[u8], FileType); 5] = [
            (b"%PDF-", FileType::Pdf),
            (b"\x89PNG\r\n\x1a\n", FileType::Png),
            (b"\xff\xd8\xff", FileType::Jpeg),
            (b"II*\x00", FileType::Tiff),
            (b"MM\x00*", FileType::Tiff),
        ];
        SIGNATURES
            .iter()
            .find(|(sig, _)| head.starts_with(sig))
            .map(|(_, t)| *t)
    }

    pub fn mime(self) -> &'static str {
        match self {
            FileType::Pdf => "application/pdf",
            FileType::Png => "image/png",
            FileType::Jpeg => "image/jpeg",
            FileType::Tiff => "image/tiff",
        }
    }

    /// Extensions a file of this type may carry; the first is the one added.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileType::Pdf => &["pdf"],
            FileType::Png => &["png"],
            FileType::Jpeg => &["jpg", "jpeg", "jpe"],
            FileType::Tiff => &["tif", "tiff"],
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            FileType::Pdf => "pdf",
            FileType::Png => "png",
            FileType::Jpeg => "jpg",
            FileType::Tiff => "tif",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FileType::Pdf => "PDF",
            FileType::Png => "PNG",
            FileType::Jpeg => "JPEG",
            FileType::Tiff => "TIFF",
        }
    }
}

const NAME_MAX: usize = 200;

/// The name to keep for an uploaded file: its last path component, without control,
/// invisible or direction-changing characters, trimmed, at most 200 characters, and
/// always ending in an extension of the type its content was recognised as (one is
/// added otherwise), so a PDF sent as `orders.bat` is saved as `orders.bat.pdf` and
/// never opens as something else. `document.<ext>` when nothing else is left.
pub fn clean_filename(raw: Option<&str>, file_type: FileType) -> String {
    let last = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !crate::domain::validate::is_invisible(*c))
        .collect();
    // Trailing dots and spaces are dropped (as Windows does when saving).
    let cleaned = cleaned.trim().trim_end_matches(['.', ' ']);
    let (stem, ext) = match cleaned.rsplit_once('.') {
        Some((stem, ext))
            if file_type
                .extensions()
                .iter()
                .any(|e| e.eq_ignore_ascii_case(ext.trim())) =>
        {
            (stem, ext.trim())
        }
        _ => (cleaned, file_type.extension()),
    };
    let stem = stem.trim().trim_start_matches('.').trim();
    let stem: String = stem.chars().take(NAME_MAX - 1 - ext.len()).collect();
    let stem = stem.trim_end();
    if stem.is_empty() {
        format!("document.{ext}")
    } else {
        format!("{stem}.{ext}")
    }
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`.
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' ' | '-' | '_' | '.' | '(' | ')' | '+' | ',' | '[' | ']' => c,
            c if c.is_ascii_alphanumeric() => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        // RFC 5987 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~"
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_recognised_by_its_first_bytes_only() {
        assert_eq!(FileType::sniff(b"%PDF-1.7\n"), Some(FileType::Pdf));
        assert_eq!(
            FileType::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(FileType::Png)
        );
        assert_eq!(FileType::sniff(b"\xff\xd8\xff\xe0"), Some(FileType::Jpeg));
        assert_eq!(FileType::sniff(b"II*\x00\x08"), Some(FileType::Tiff));
        assert_eq!(FileType::sniff(b"MM\x00*\x00"), Some(FileType::Tiff));
        for bad in [&b"<html>"[..], b"PK\x03\x04", b"%PD", b"", b"GIF89a"] {
            assert_eq!(FileType::sniff(bad), None);
        }
    }

    #[test]
    fn filenames_lose_paths_and_control_characters() {
        let pdf = FileType::Pdf;
        assert_eq!(clean_filename(Some("../../etc/passwd"), pdf), "passwd.pdf");
        assert_eq!(clean_filename(Some("C:\\temp\\a.pdf"), pdf), "a.pdf");
        assert_eq!(clean_filename(Some("a\r\nb.pdf"), pdf), "ab.pdf");
        assert_eq!(clean_filename(Some("..."), pdf), "document.pdf");
        assert_eq!(clean_filename(Some("....pdf"), pdf), "document.pdf");
        assert_eq!(clean_filename(None, FileType::Png), "document.png");
        let long = clean_filename(Some(&format!("{}.pdf", "é".repeat(300))), pdf);
        assert_eq!(long.chars().count(), 200);
        assert!(long.ends_with("é.pdf"), "the extension survives the cut");
    }

    #[test]
    fn a_filename_always_ends_in_an_extension_of_its_content() {
        let pdf = FileType::Pdf;
        assert_eq!(clean_filename(Some("orders.bat"), pdf), "orders.bat.pdf");
        assert_eq!(clean_filename(Some("sheet.html"), pdf), "sheet.html.pdf");
        assert_eq!(clean_filename(Some("Scan.PDF"), pdf), "Scan.PDF");
        assert_eq!(
            clean_filename(Some("card.jpeg"), FileType::Jpeg),
            "card.jpeg"
        );
        assert_eq!(
            clean_filename(Some("card.pdf"), FileType::Png),
            "card.pdf.png"
        );
        assert_eq!(clean_filename(Some("x.tiff"), FileType::Tiff), "x.tiff");
        // A right-to-left override would show `invoiceexe.pdf` for an .exe.
        assert_eq!(
            clean_filename(Some("invoice\u{202E}fdp.exe"), pdf),
            "invoicefdp.exe.pdf"
        );
        assert_eq!(
            clean_filename(Some("a\u{200B}b\u{2028}.pdf"), pdf),
            "ab.pdf"
        );
        for hidden in [
            '\u{061C}',
            '\u{00AD}',
            '\u{034F}',
            '\u{3164}',
            '\u{FE0F}',
            '\u{E0041}',
        ] {
            assert_eq!(
                clean_filename(Some(&format!("a{hidden}b.pdf")), pdf),
                "ab.pdf"
            );
        }
        assert_eq!(clean_filename(Some("x.pdf. "), pdf), "x.pdf");
    }

    #[test]
    fn content_disposition_is_a_safe_header_value() {
        let v = content_disposition("Résumé \"final\";\r\nx.pdf");
        assert!(v.is_ascii());
        assert!(!v.contains('\r') && !v.contains('\n'));
        assert!(v.starts_with("attachment; filename=\"R_sum_ _final____x.pdf\"; "));
        assert!(v.ends_with("filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22%3B%0D%0Ax.pdf"));
        assert!(poem::http::HeaderValue::from_str(&v).is_ok());
    }
}
