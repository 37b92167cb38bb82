//! The built-in processors.

mod course_context;
mod event_types;
mod google_analytics;
mod internal;
mod legacy_mapping;
mod name_filters;
mod name_validator;
mod scrubber;
mod segment_filter;
mod size_limit;

pub use course_context::CourseContextFromUrl;
pub use event_types::{event_type, EventTypes, TRACKING_LOG_TYPE};
pub use google_analytics::GoogleAnalytics;
pub use internal::{InternalEvents, InternalMode, DEFAULT_INTERNAL_PREFIX};
pub use legacy_mapping::{LegacyFieldMapping, CONTEXT_FIELDS_TO_INCLUDE};
pub use name_filters::{FilterMode, NameAllowlist, RegexFilter, RegexFilterError};
pub use name_validator::{NameMode, NameValidator};
pub use scrubber::Scrubber;
pub use segment_filter::{SegmentFilter, SEGMENT_TYPES};
pub use size_limit::{SizeLimit, DEFAULT_MAX_EVENT_BYTES};
