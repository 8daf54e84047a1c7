"""Whose applications a member of staff may file, see and move: an operator works at its OSS centres,
an officer on its agencies' applications. A use case given no caller (an Open311 partner, a queued
request) is not limited here."""
from oss_common.auth import OFFICER, OPERATOR, Forbidden, Principal
from oss_common.regions import Region


def require_centre(principal: Principal, centre: str) -> None:
    """An operator works only at its own OSS centres."""
    if principal.role == OPERATOR and centre not in principal.centres:
        raise Forbidden(f"this operator does not work at centre {centre}",
                        fields={"centre": [f"not one of the operator's centres: {', '.join(principal.centres)}"]})


def require_agency(principal: Principal, agency: str) -> None:
    """An officer works only on its own agencies' applications."""
    if principal.role == OFFICER and agency not in principal.agencies:
        raise Forbidden(f"this officer does not work for agency {agency}",
                        fields={"agency": [f"not one of the officer's agencies: {', '.join(principal.agencies)}"]})


def require_scope(principal: Principal, application) -> None:
    """Staff see and move their own centres' or agencies' applications; 403 naming the field otherwise."""
    require_centre(principal, application.centre)
    require_agency(principal, application.agency)


def filing_centre(region: Region, requested: str | None, principal: Principal | None = None) -> str:
    """The centre an application is filed at: the one it names; else the region's main centre, unless
    the operator filing it does not work there, then the operator's first centre."""
    if requested:
        return requested
    if principal is not None and principal.role == OPERATOR and region.main_centre not in principal.centres:
        return principal.centres[0]
    return region.main_centre


def list_limits(principal: Principal) -> dict:
    """The filters that keep a list to the caller's scope: an operator's centres, an officer's agencies."""
    return {"centres": list(principal.centres)} if principal.role == OPERATOR else {"agencies": list(principal.agencies)}
