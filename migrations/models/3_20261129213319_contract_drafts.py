"""Migration 3_20261129213319_contract_drafts.py

One open draft per user, template and subject (``contracts.draft_key``, unique), and room for the
longest face verify_id WeChat issues (256 characters).

Written by hand from Aerich's MySQL output: Aerich cannot modify a column on SQLite, which does not
enforce VARCHAR lengths anyway, and SQLite cannot add a UNIQUE column, so it gets the column and a
unique index."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
ALTER TABLE "contracts" ADD "draft_key" VARCHAR(160);
CREATE UNIQUE INDEX IF NOT EXISTS "uid_contracts_draft_key" ON "contracts" ("draft_key");
""",
    "mysql": r"""
ALTER TABLE `face_verifications` MODIFY COLUMN `verify_id` VARCHAR(256) NOT NULL;
ALTER TABLE `contracts` ADD `draft_key` VARCHAR(160) UNIQUE;
""",
}

DOWNGRADE = {
    "sqlite": r"""
DROP INDEX IF EXISTS "uid_contracts_draft_key";
ALTER TABLE "contracts" DROP COLUMN "draft_key";
""",
    "mysql": r"""
ALTER TABLE `contracts` DROP INDEX `draft_key`;
ALTER TABLE `contracts` DROP COLUMN `draft_key`;
ALTER TABLE `face_verifications` MODIFY COLUMN `verify_id` VARCHAR(255) NOT NULL;
""",
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return UPGRADE[db.schema_generator.DIALECT]


async def downgrade(db: BaseDBAsyncClient) -> str:
    return DOWNGRADE[db.schema_generator.DIALECT]


MODELS_STATE = (
    "eJztXW1z2joW/isaPrUzbDYlL83m7uwMJaSXbZt0CO3t3KbjCFuAFyNTy07K3u1/X0m2wS"
    "+ysQAH4+pLUyQ9sv0cST7n6Bz5r8bMNpBFjvpo5CAyGdhThBuX4K8GhjNE/yOsb4IGnM9X"
    "tazAhUOLAxy/peayprwKDonrQN2ltSNoEUSLDER0x5y7ps2u1rjFCDj2E5gjB5iEeMgAQT"
    "eAd3ME+IUJsEfApm0te2xiQCbQQQCCh4cRnJnW4uHhN/qLA2gv7MqGrdNLm3hc1kXu8cOD"
    "Y7vQRYYG3YcH8DSh5eiHPoF4jIwmgNgAc3oNhF16GxQZtA56cNAj/UuAO0EUalsI+Fc5Yn"
    "fvYfO7hyiRY0TrHfoMX7/RYhMb6Aci4c/5VBuZyDJiUjMN1gEv19zFnJe9Mcc97F7ztoyb"
    "oabbljfDq/bzhTux8RJgYpeVjhFGDrtnWuY6HhMf9iwrkHcoUf9mV038u4xgDDSCnsUGAU"
    "P7N7Aqa2jaze1Au+sONK2RGiAhIiLOoEi3MRtc9FYJJ2DMbuFv/2i1Tk5et45Pzi/OTl+/"
    "Prs4vqBt+f2mq17/9G9mxZbfFees97Z3M2A3ZNMR7A9wVvCTY6ALfRQXxop9X4ZpCXToWB"
    "Lzv0IkZEAfLimDkPE8IYQFe5LCDP7QLITH7oT+PGnlEPy53e/83u6/OGm9jLN8E9S0eBXj"
    "e8UvnzvaBJKJDMdx1G543u9gj9F8flqA5vPTTJpZVZxm3UHBwpam+YrWuOYMiamOIxNUGw"
    "H0KPzPbgb46tXyHNTTBzRuMZ2yvshzqB/0PnTvBu0PH9nlZoR8tzh/7UGX1bR46SJR+uI8"
    "IaZlJ+CP3uB3wH6CP29vupxem7hjh19x1W7wZ4PdE/RcW8P2kwaNyOgMS0PWYlJHP+Ym7W"
    "0DqceRNZT6gUg55CRXzCutRVbMceQOxByMSiXlEqTM9cuNpBxDKilXWcoeQY4mq/JHQOv1"
    "/gNYnJ9P9WdW12gq1PwZqWkxXNsOMsf4HVpwUfTofUOsIwH1gbX9KejmwETwMxxjYelq2j"
    "vwaWmmRocefXb6xMj1dff2Xad91W1whodQnz5Bx9BiVLMau2UnSpZt01Wz1ixZAjEcc3LY"
    "U7B7jrIu8H2E0sj2ebAHKubqyOZSWfsVnvLNHGvfniMskkC2JbpCKCt0rRVKn9KW5DcC2Y"
    "jg9apKnQgmiBB6S9oULTSEdRmiBdCSCH9eVSLGeOvsrADltFUm57wuTvqckoRk6Y6BFNES"
    "RPPnk6d6CVPLyNplxGdsaHt4E3MzjVYmZ5VNTuUbzp5o9fUNW5C4Gt8X3UDwKbCa4VWb4S"
    "nPRrYhHvUxJjf8E5ZogL9+10cW5JSmhZ8RZnBgUz/LARKbRCOoI+0ROebI1DkdW3J2Tfv7"
    "HOmurrx5c8uGxpZkfeKd1JWi6Kiii6yLZnN3S8KiI6vt91hX9mgtd95tyVgn6KZONEm5Xa"
    "OOSRb35ApCYUJCbzEa2PSf9bT2In0dpFYgZlXCP92B+gR16eBaNARe6khtM89XrbN2GuXS"
    "MVHB8Lw2IDNoWWCKFn9/hJaHAO8EPJnuBPBd/0UToKPxEY9j+wNRs9oFUNcRIX6cW9MPoz"
    "PAcAFYR0+2M0UO4VFusRi9Uq+0hYed3o+M9yBoXjvv7qvWRQG3AW2V6Tfgdfn+dC73NNsD"
    "9CNjO2MJKCt2rjI2RPfLIGY+hLy++ND+8jJmQry/vXkbNo/IofP+9k3Cb6PifTYSxSGYc3"
    "Ht2djQYRNH1lDMB+qwEYh9qVUUNOLL3E0PjIWO7WFXvK+eaJGrtQTGDB2WvHFRxSUwgXjM"
    "P9ukb4IpHWQ8Kn8I8ZSF5BuQqhR+twYwMVcs2LtpCAkCxI5qEUEygOkKFJcyryRQXL5Ggy"
    "jYlfgdwUXjmwoaOISgARWy9cyiiOjywWwprMwH7WuhXSb0+fMi6nzy/RXR5s+Tu4BsCRLq"
    "F2Jug+Z5SsUBkpxDKlMKkmkW7I2QJi1zFVi2f7414LjcBaD16vT16cXJ+ely3i9L8qZ7Rj"
    "TmftSdlBdeoPCIPPXZKo94n6BYMiXDgigWtI6OQRCucwR6VFGhSiaVJTAJGJlU7sDGFDIy"
    "MbR+Aw8PTFDeLMxqnEFnSqg2Ik6qLOti95jQq1iI6VMAEqpLUa3JRdgF+gTpU/CCO4KIOc"
    "Z+amXov32psier/z7O8f+wkbQQKkfZL+kYqHZ+t9ZZkRc1bZUTGZV6VdueqxH0nZqOMkTH"
    "UbVjevfJqqahYW82ZJq7bBCaAFpDJbSEiFYXup5gF48x3aWMprIw4kGtS/Tzkd2YI2wwyu"
    "QYb3zs3lz1bt5eggB/jz+27+66V7QAEoKMe3zd7r1nv0fQtNjv7pePvT4r8L23RvKNvh+z"
    "IVi+HSSjCMdBG2nDFdsp3IU+rKL0ilF9mE5flcGtdnTCODITm2Sy0exOQFUgZpXlHLGOpV"
    "fxOFTJ+SDkPJSKNUnA6pcWVEJKodp8UfnyFRDBgefLLyMyBa7uaLRmtos7iA8tHIg4mCC2"
    "wU5sDIZowvfXg812SAIPNDKOQPSkP1ad3q7fpiPlWK7wWtPMcSyzv7Ipt1FMDX1vpaTcrt"
    "yWkmSngIpxWcar7GOuU7Yz1eup6k9kR3gCVj9l/dVxqwjXrFm2e5hXxvkemo470cJ4kKLh"
    "JXHULx1lQuf5I7Tovx7VuCwZEtPILYms2ACW5zHQDzdwyKTRyslaaacMD8Lx99I28bOm0M"
    "oFV2Vp68wm3kx3FUDr93YvRXmNMietvgrB6rSetfor522jQ6jSSDXOi49z3aJvA2m6l6j6"
    "UV0koTQ7nfRCSDJLuNF4iSzRMWT9yC5pHdlCIRbhlY5UZR1JJZJmT7bDjCnKSiSt3pbpL7"
    "KJsVVKy7rN1fDElZK3VvcqqnI2Vrc7XNw/eEp0vPjySKqcA8ZXZ1+pI8brOembOTuX2Smr"
    "68PZDyF9tdG70q77tzeDS2DSBc6xsXuPadmbducdL2Jz8B7f9d7etAef+t1LnvUFXc/xn3"
    "fv8ess9Qxh12dXxuhI4KospMpk1BDzvwKSM5eisHmdorZ2liFAJrB1di4zZFeIGg7WMnKR"
    "aLsx0iRPEEvAapdnt8OTxFS6S31N0yLpLtUwTfctXxXNu28RHHg0r+igX4G1mnEecLbpmn"
    "km8fpw3+4jCxDWEfsiN6L9LEB4oKx/AsQleGLnfz5BAthppgZ4MYNkioyXTb9Cp7cOGDtN"
    "/l3udBhwGRdQRnaFF6/mL25kd9r9K25Qs30Xlhze6bLOdXSP37Rv3gX1fBeMtaiGce0fHi"
    "OjPa8QVRZIZQzquWOzhdDRHDSSoTmJq9+GaTnR2njuuUTzXyVpvv99d3uTsd4ngUlDxdRd"
    "8D9gmaQ0Fbbxz5GHdX7I09AzLdfE5Ihd9l+NcrUqEf2MqJiNkjoOOXnyccL4YB0kj0NWNm"
    "T21FA2pLIhlQ2pbMjsM589w3S7jwgLTcdIbTP3rGfWTkOsYfk7nl8bvsG33IIJflJyvylD"
    "rZKGGkHf5egPACoGZcMTk+V1odrqQAei8xSK5KNLqi141+ZkL4aAGlrVJaSI6uEZvxL8ij"
    "+BpQgWEZx4cRdlOQGrIdW79xCtlCJ5ond5Jm+laN79iGYqj4xDKGyv/EA79wPNHfSoTSCZ"
    "yDlEIyA14guMeFmGFblryN0qdnzHnoDfkTjieVXZXO8HmITtKhP3/KuY+VsGGVbVgC8y6U"
    "v+4Mkz2+9qka3nIrv80rRgjY1+hTrnY8DRT16X7GeN+KxZEJAVHBZDvOF/kO4qh+u+14vs"
    "9TocJZKfCknAahfDvHszOzovirIcxdRwwd49yY/QMaHoi2s5XxdaQeoX47LjExgekUMk/Z"
    "4RiBrBRRKgglemrOcziavfWC6PaznXZxxVP57VN5uYm9WBI1fS39m46revB5eAY/2MVvYx"
    "JpbOKvo60z3+fNujPx9tsyLBuPzGZbPZYqCdzIYKqYGvzo8LkXycw/Jx6hMF2B8SmnyCpg"
    "Baw7dqCV+FCHmTHNxJXA3JLiVbc+MBvpvh/au9Xzca2zsY2ZXmuZSBjYKsMpmd3Chmq93c"
    "itGtwvcrI4oah++rLx5uMgGrJOVCAYvB20heyjGgOl6yyjIODN+Np7KS8iFImfkzNhJyDK"
    "hkXGUZq5w6lVNXBRFsm1PXpzOh3+sM9pZUhxxTnzREcXR+TTM3iG7VRgXQPfOsLy2ATu2x"
    "Psc5DWxSSTAcNK8hu6+OC+1wHOfscByndjiCo09lnGQRyPNnPBy4k2yvIYs//w/BDROx"
)
