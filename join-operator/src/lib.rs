//! The impressions ⋈ plays event-time interval join of `shared/workload.md`:
//! records and their CSV form ([`event`]), the generator ([`gen`]), resumable
//! sources with the job's merge order and watermark rule ([`source`]), the
//! batch oracle ([`oracle`]), output validation ([`validate`]), the
//! transactional part-file sink ([`sink`]) and the job ([`job`]).

pub mod event;
pub mod gen;
pub mod job;
pub mod operator;
pub mod oracle;
pub mod sink;
pub mod source;
pub mod validate;
