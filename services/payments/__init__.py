"""Money from outside the bank, paid with WeChat Pay in the mini-program: the ETC device fee and arrears.

``orders``: creating an order (the amount is the server's, never the client's), what ``wx.requestPayment``
needs, and applying what WeChat Pay says about it (a notification, or a query) exactly once.
"""
