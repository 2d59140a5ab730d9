//! The canonical upper-case names of gRPC status codes ("INVALID_ARGUMENT"), as
//! the gRPC spec, grpcurl and every other language print them. tonic's `Debug`
//! gives `InvalidArgument` and its `description()` a sentence; logs and the CLI
//! want the name people search for.

use tonic::Code;

/// The canonical name of `code`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::code_name;
    use tonic::Code;

    #[test]
    fn names_follow_the_spec_numbering() {
        // Spot checks against https://grpc.github.io/grpc/core/md_doc_statuscodes.html
        assert_eq!(code_name(Code::from_i32(3)), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::from_i32(8)), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(Code::from_i32(14)), "UNAVAILABLE");
        assert_eq!(code_name(Code::from_i32(99)), "UNKNOWN");
    }
}
