"""Names of the record types a connector can provide, with the key each takes.

Each (source, record type) pair gets one DataLoader per request. Keys are
unified social credit codes, except where noted.
"""

REGISTRATION = "registration"                      # -> Registration | None
ABNORMAL_OPERATIONS = "abnormal_operations"        # -> list[AbnormalOperationListing]
SERIOUS_VIOLATIONS = "serious_violations"          # -> list[SeriousViolationListing]
LEGAL_REPRESENTATIVE_OF = "legal_representative_of"  # resident ID -> list[Registration]
TAX_RATINGS = "tax_ratings"                        # -> list[TaxRating]
TAX_ARREARS = "tax_arrears"                        # -> list[TaxArrear]
DISHONEST_DEBTORS = "dishonest_debtors"            # USCC or resident ID -> list[DishonestDebtorRecord]
SOCIAL_INSURANCE = "social_insurance"              # -> list[SocialInsuranceMonth]
ENVIRONMENTAL_RATINGS = "environmental_ratings"    # -> list[EnvironmentalRating]
ENVIRONMENTAL_PENALTIES = "environmental_penalties"  # -> list[EnvironmentalPenalty]
LICENCES = "licences"                              # -> list[Licence]
PENALTIES = "penalties"                            # USCC or resident ID -> list[Penalty]
CREDIT_LISTS = "credit_lists"                      # -> list[CreditListEntry]
COMMITMENTS = "commitments"                        # -> list[CreditCommitment]
REPAIRS = "repairs"                                # -> list[CreditRepair]
AUTHORIZATIONS = "authorizations"                  # -> list[Authorization] (internal, for the policy)

# Record types with at most one record per key: served by the subject's home
# source (chosen by division code); every other record type is a list, merged
# from every source that serves it.
SINGLE = frozenset({REGISTRATION})

ALL = frozenset(
    value for name, value in globals().items()
    if name.isupper() and isinstance(value, str)
)
