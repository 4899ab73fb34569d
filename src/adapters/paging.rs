//! Following a listing page by page, whatever the service calls its token (IAM's `Marker`,
//! `NextToken`, DynamoDB's `LastEvaluatedKey`).

use std::future::Future;

use super::{ErrorKind, PortError, PortResult};

/// Every item of a paged listing. `fetch` gets the page after a token (`None`: the first page);
/// `split` gives a page's items and the next page's token, `None` after the last page. `token`
/// names the token in the error about a server that repeats one (which would loop forever).
pub async fn all_pages<K, T, O, F, Fut, S>(
    op: &str,
    token: &str,
    mut fetch: F,
    mut split: S,
) -> PortResult<Vec<T>>
where
    K: PartialEq + Clone,
    F: FnMut(Option<K>) -> Fut,
    Fut: Future<Output = PortResult<O>>,
    S: FnMut(O) -> (Vec<T>, Option<K>),
{
    let mut all = Vec::new();
    let mut next: Option<K> = None;
    loop {
        let (items, after) = split(fetch(next.clone()).await?);
        all.extend(items);
        match after {
            Some(k) if next.as_ref() == Some(&k) => {
                return Err(PortError::new(
                    ErrorKind::Permanent,
                    op,
                    format!("the same pagination {token} twice"),
                ))
            }
            Some(k) => next = Some(k),
            None => return Ok(all),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Page = (Vec<u8>, Option<&'static str>);

    fn follow(pages: Vec<Page>) -> PortResult<Vec<u8>> {
        let mut pages = pages.into_iter();
        let fetch = |_: Option<&'static str>| {
            let page = pages.next();
            async move { page.ok_or_else(|| PortError::new(ErrorKind::Permanent, "t", "no page")) }
        };
        futures::executor::block_on(all_pages("List", "marker", fetch, |p: Page| p))
    }

    #[test]
    fn pages_are_followed_to_the_end() {
        let pages = vec![
            (vec![1, 2], Some("a")),
            (vec![3], Some("b")),
            (vec![4], None),
        ];
        assert_eq!(follow(pages).unwrap(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_repeated_token_is_an_error_not_a_loop() {
        let pages = vec![(vec![1], Some("a")), (vec![2], Some("a")), (vec![3], None)];
        assert_eq!(
            follow(pages).unwrap_err().message,
            "the same pagination marker twice"
        );
    }
}
